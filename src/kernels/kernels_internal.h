// Shared by the kernel implementations only: the dispatch table, dtype conversions, threading policy.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>

#include "kernels/kernels.h"
#include "kernels/quant.h"

// Helpers here are `static inline` on purpose: this header is compiled into TUs with different
// ISA flags, and a shared (COMDAT) copy could be an AVX-512 build picked for the scalar path.

// Invariant check for kernel arguments (the kernels library links nothing but OpenMP). The
// failure path lives in dispatch.cpp and msg is a C string so that ISA files instantiate no
// std::string code of their own.
#define NV_KCHECK(cond, msg)                                                    \
  do {                                                                          \
    if (!(cond)) ::nanovllm::kernels::kernel_check_failed(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)

namespace nanovllm::kernels {

// Throws std::logic_error naming the failed check.
[[noreturn]] void kernel_check_failed(const char* expr, const char* file, int line, const char* msg);

// One implementation of every kernel; dispatch.cpp picks a table once per process. Besides the
// functions, a table states what callers must know of it: the weight layout its matmul reads
// fastest and the precision its matmul gives the activations, per weight dtype (indexed by
// DType), so that no caller needs to compare table names.
constexpr int kNumDTypes = 10;
struct KernelTable {
  const char* name;
  Layout layout[kNumDTypes];
  Precision precision[kNumDTypes];
  // Rows of RowRole::kPrompt: matmul_prompt, of precision prompt_precision[dtype]. Where a table
  // has no other path for a dtype, the same as matmul / precision. For quantized weights the
  // SIMD tables decode W panel by panel into the layout of their fast GEMM.
  // NANOVLLM_QUANT_PROMPT_GEMM=0 sends quantized prompt rows down the decode path instead
  // (quant_prompt_gemm), so that a benchmark can run both paths from one binary.
  Precision prompt_precision[kNumDTypes];
  void (*matmul)(const float* x, int M, const WeightView& w, const float* bias, float* y);
  void (*matmul_prompt)(const float* x, int M, const WeightView& w, const float* bias, float* y);
  void (*rmsnorm)(const float* x, const float* weight, int rows, int n, float eps, float* out);
  void (*rope)(float* x, int n_tokens, int n_heads, int head_dim, const int* positions,
               const float* inv_freq);
  void (*silu_mul)(const float* gate_up, int rows, int n, float* out);
  void (*kv_store)(const KVLayer& kv, const float* k, const float* v, int n, const int* slots);
  void (*paged_attention)(const float* q, const AttnSeq* seqs, int n_seqs, int n_heads,
                          const KVLayer& kv, float scale, float* out);
  void (*embed)(const WeightView& table, const int* ids, int n, float* out);
};

// An exception must not leave an OpenMP region: that calls std::terminate, so a failed scratch
// allocation (or any throw) inside a kernel would kill a server instead of failing one request.
// Code inside a region runs through run(), which keeps the first exception of any thread and
// makes the team skip the rest of the work; the caller rethrows it once the team has joined.
// Every thread still meets every barrier, so a failure cannot deadlock the team. In an
// anonymous namespace, like the static helpers, so that no ISA's copy is shared.
namespace {
class RegionErrors {
 public:
  template <class F>
  void run(F&& f) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
#pragma omp critical(nanovllm_region_errors)
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
  // After the region: the first error, on the calling thread.
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};
}  // namespace

// Whether the SIMD tables send quantized prompt rows through their GEMM: yes, unless
// NANOVLLM_QUANT_PROMPT_GEMM=0 (dispatch.cpp).
bool quant_prompt_gemm();

const KernelTable& scalar_table();
const KernelTable& avx2_table();    // kernels_avx2.cpp; call only where the CPU has AVX2+FMA+F16C
const KernelTable& avx512_table();  // kernels_avx512.cpp; needs AVX-512 F/BW/VL/DQ/BF16/VNNI
// The AVX-512 table's entries that live in their own files (gemm_avx512.cpp, ...).
void matmul_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y);
void matmul_prompt_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y);
void paged_attention_avx512(const float* q, const AttnSeq* seqs, int n_seqs, int n_heads, const KVLayer& kv,
                            float scale, float* out);
// elementwise_avx512.cpp
void rmsnorm_avx512(const float* x, const float* weight, int rows, int n, float eps, float* out);
void rope_avx512(float* x, int n_tokens, int n_heads, int head_dim, const int* positions, const float* inv_freq);
void silu_mul_avx512(const float* gate_up, int rows, int n, float* out);
void kv_store_avx512(const KVLayer& kv, const float* k, const float* v, int n, const int* slots);

// Below this many flops a kernel runs on the calling thread: waking the team costs more.
constexpr double kMinParallelFlops = 1 << 17;

static inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round to nearest even, as torch does; NaN stays NaN.
static inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// IEEE half to float without F16C (the scalar path must run on any x86-64).
static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: normalise the mantissa
    int e = -1;
    do { man <<= 1; ++e; } while (!(man & 0x400));
    u = sign | uint32_t(112 - e) << 23 | ((man & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Element i of a matrix in an element dtype (not a quantized one), as f32; for I8 the integer
// before its row's scale.
static inline float load_as_f32(const void* data, DType t, size_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::I8: return float(static_cast<const int8_t*>(data)[i]);
    default: kernel_check_failed("!is_quantized(t)", __FILE__, __LINE__, "load_as_f32 of a quantized dtype");
  }
}

// Row n of a row-major matrix as f32 (for I8 the integers before the row's scale), with one
// dtype switch per row.
static inline void row_as_f32(const WeightView& w, size_t n, float* out) {
  const size_t K = size_t(w.cols), first = n * K;
  const auto* h = static_cast<const uint16_t*>(w.data) + first;
  switch (w.dtype) {
    case DType::F32: std::memcpy(out, static_cast<const float*>(w.data) + first, K * sizeof(float)); return;
    case DType::BF16: for (size_t k = 0; k < K; ++k) out[k] = bf16_to_f32(h[k]); return;
    case DType::F16: for (size_t k = 0; k < K; ++k) out[k] = f16_to_f32(h[k]); return;
    case DType::I8:
      for (size_t k = 0; k < K; ++k) out[k] = float(static_cast<const int8_t*>(w.data)[first + k]);
      return;
    default:  // quantized: whole blocks, row n at n * row_bytes
      dequantize_row_ref(w.dtype, static_cast<const uint8_t*>(w.data) + n * row_bytes(w.dtype, w.cols),
                         int64_t(K), out);
  }
}

// What row n of w is multiplied by after its dot product: its int8 scale, else 1.
static inline float row_scale(const WeightView& w, size_t n) {
  return w.dtype == DType::I8 ? w.scales[n] : 1.f;
}

// The position of element (n, k) of w in its data, for either layout (see Layout).
static inline size_t weight_index(const WeightView& w, size_t n, size_t k) {
  if (w.layout == Layout::kRows) return n * size_t(w.cols) + k;
  const size_t r = n % kPanelRows;
  if (w.layout == Layout::kPairPanels)
    return (((n / kPanelRows) * ((size_t(w.cols) + 1) / 2) + k / 2) * kPanelRows + r) * 2 + k % 2;
  const size_t slot = w.dtype == DType::BF16 ? (r < 8 ? 2 * r : 2 * (r - 8) + 1) : r;
  return ((n / kPanelRows) * size_t(w.cols) + k) * kPanelRows + slot;
}

// Where K/V of (slot, kv_head) start inside a cache block array. A block is
// [n_kv_heads, block_size, head_dim]: the rows one KV head reads for a block's positions are one
// contiguous run (4 KiB for 16 bf16 rows of 128), which the hardware prefetchers follow, where
// a [block_size, n_kv_heads, head_dim] block would scatter them n_kv_heads rows apart.
static inline size_t kv_offset(const KVLayer& kv, size_t slot, int kv_head) {
  const size_t bs = size_t(kv.block_size), block = slot / bs;
  return ((block * size_t(kv.n_kv_heads) + size_t(kv_head)) * bs + slot % bs) * size_t(kv.head_dim);
}

// The cache slot of position p of a sequence.
static inline size_t seq_slot(const KVLayer& kv, const int* block_table, int p) {
  return size_t(block_table[p / kv.block_size]) * size_t(kv.block_size) + size_t(p % kv.block_size);
}

}  // namespace nanovllm::kernels
