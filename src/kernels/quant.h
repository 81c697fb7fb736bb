// ggml's quantized blocks (the layouts GGUF files store) and the quantized-matmul entry points
// of each ISA. Internal to the kernels library.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace nanovllm::kernels {

// Byte-identical to ggml's block_q8_0, block_q4_0, ... (ggml-common.h); f16 fields as raw bits.
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };          // element j: qs[j] & 15, j + 16: qs[j] >> 4
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };       // w = d * q + m
constexpr int kKScaleBytes = 12;                           // 8 scales and 8 mins of 6 bits
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[kKScaleBytes]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[kKScaleBytes]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

static inline bool is_quantized(DType t) { return t >= DType::Q8_0; }

// Bytes of one block of t (one element for the element types).
size_t block_bytes(DType t);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block (ggml's get_scale_min_k4).
static inline void k_scale_min(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The reference decoder (quant_scalar.cpp, no ISA flags): n elements, a multiple of the block.
void dequantize_row_ref(DType t, const void* src, int64_t n, float* dst);

// ggml's activation blocks (its vec_dot_type): for the integer dot products with quantized
// weights x is rounded to one of these exactly as llama.cpp rounds it, so that our logits and
// greedy ids follow llama.cpp's on near-ties (only the f32 summation order differs).
struct BlockQ8_1 { uint16_t d, s; int8_t qs[32]; };                // s = f16(d * sum(qs)), f32 d
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };  // bsums: sums of qs per 16
static_assert(sizeof(BlockQ8_1) == 36 && sizeof(BlockQ8_K) == 292);

// Which of them ggml pairs with a weight dtype: Q8_0 with Q8_0 and Q4_0, Q8_1 with Q4_1, Q8_K with
// the K-quants.
enum class ActQuant : uint8_t { kQ8_0, kQ8_1, kQ8_K };
ActQuant act_quant(DType weights);
size_t act_row_bytes(ActQuant a, int64_t n);  // n: a multiple of 32 (256 for Q8_K)

// The scalar references (quant_scalar.cpp), from ggml's formulas:
// - n elements of x rounded to a's blocks, as ggml's x86 CPU code does it (what llama.cpp runs
//   here); bit for bit its output (tests/kernels/data/act_quant_goldens.txt);
void quantize_act_row_ref(ActQuant a, const float* x, int64_t n, void* dst);
// - the dot product of n weights of dtype t with activations rounded for t, by ggml's vec_dot
//   formula for t (e.g. Q4_1 with Q8_1: sum over blocks of d dx sum(q qx) + m s);
float vec_dot_ref(DType t, int64_t n, const void* w, const void* xq);
// - y = x W^T from those two: the scalar twin of the SIMD tables' Precision::kQ8 matmuls.
void matmul_quant_ref(const float* x, int M, const WeightView& w, const float* bias, float* y);

// Quantized (kRows) matmuls with activations rounded as ggml does (Precision::kQ8).
void matmul_quant_avx2(const float* x, int M, const WeightView& w, const float* bias, float* y);
void matmul_quant_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y);
// The prompt-row path (KernelTable::matmul_prompt): W decoded to bf16 pair panels group by group
// and multiplied by the vdpbf16ps GEMM, x rounded to bf16 (gemm_avx512.cpp).
void matmul_quant_gemm_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y);
// The same on AVX2: W decoded to f32 panels and multiplied by the FMA GEMM, x in f32.
void matmul_quant_gemm_avx2(const float* x, int M, const WeightView& w, const float* bias, float* y);
// Rows [n0, n1) of a quantized (kRows) w decoded to f32 by that ISA, K = w.cols floats per row
// into out (scratch: 2 K / 16 floats): the panels of the many-row GEMMs are made from these.
void dequantize_rows_avx2(const WeightView& w, int n0, int n1, float* scratch, float* out);
void dequantize_rows_avx512(const WeightView& w, int n0, int n1, float* scratch, float* out);
// One row of x rounded by that ISA's matmul, written as ggml's blocks (for the tests).
void quantize_act_row_avx2(ActQuant a, const float* x, int64_t n, void* dst);
void quantize_act_row_avx512(ActQuant a, const float* x, int64_t n, void* dst);

}  // namespace nanovllm::kernels
