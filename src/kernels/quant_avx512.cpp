// Quantized matmul on AVX-512 VNNI: vpdpbusd (u8 x s8, 4 products into each int32 lane) over two
// groups of 32 weights per step. See quant_simd.inc.
#include <immintrin.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "kernels/kernels_internal.h"

// GCC 12's own AVX-512 headers (reduce, casts) trip these warnings on their placeholder operands.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace nanovllm::kernels {
namespace {

#include "kernels/quant_simd.inc"

static inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// Where a Q4_0 / Q4_1 block's 16 bytes of nibbles start (after its f16 scale, and Q4_1's min).
template <class Q>
constexpr size_t kQ4QsAt = Q::kBytes - 16;

struct Avx512Core {
  static constexpr int kMR = 8;
  // vpdpbusd multiplies unsigned weights: Q8_0's signed w becomes w + 128 (b = -128 a, prepare).
  static constexpr bool kUnsignedW = true;

  template <class Q>
  static inline __m256i group(const uint8_t* wrow, size_t k) {
    const __m256i u = row_group<Q>(wrow, k);
    return Q::kSigned ? _mm256_xor_si256(u, _mm256_set1_epi8(char(0x80))) : u;
  }

  // The u of the 64 weights at k (two groups of 32). Q4_0 / Q4_1: blocks k / 32 and k / 32 + 1
  // unpacked in 4 instructions, each block's 16 bytes broadcast to two 128-bit lanes and the
  // second lane of each shifted right by 4 (its high nibbles), instead of 11 through two groups.
  template <class Q>
  static inline __m512i group64(const uint8_t* wrow, size_t k) {
    if constexpr (Q::kElems == 32 && !Q::kSigned) {
      const uint8_t* blk = wrow + k / 32 * Q::kBytes;
      const __m512i v = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(load128(blk + kQ4QsAt<Q>)), 0xFF00,
                                                    load128(blk + Q::kBytes + kQ4QsAt<Q>));
      return _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4), _mm512_set1_epi8(0xF));
    } else {
      return _mm512_inserti64x4(_mm512_castsi256_si512(group<Q>(wrow, k)), group<Q>(wrow, k + 32), 1);
    }
  }

  template <class Q, int MR>
  static void rows(const uint8_t* wrow, size_t K, const QuantX& xq, int m0, const float* a4, float* out) {
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    // One step: 64 weights, or the last 32 of a row with an odd number of groups (the upper
    // half of u zero, and x and the scales read only as far as the row goes).
    auto step = [&](size_t k, bool full) {
      const __mmask16 lanes = full ? 0xffff : 0x00ff;
      const __m512i u = full ? group64<Q>(wrow, k) : _mm512_zextsi256_si512(group<Q>(wrow, k));
      const __m512 a = _mm512_maskz_loadu_ps(lanes, a4 + k / 4);
      for (int i = 0; i < MR; ++i) {
        const size_t row = size_t(m0 + i);
        const int8_t* xr = xq.q + row * K + k;
        const __m512i xv = full ? _mm512_loadu_si512(xr) : _mm512_zextsi256_si512(load256(xr));
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, xv);
        const __m512 dx = _mm512_maskz_loadu_ps(lanes, xq.d4 + row * (K / 4) + k / 4);
        acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(p), a), dx, acc[i]);
      }
    };
    size_t k = 0;
    for (; k + 64 <= K; k += 64) step(k, true);
    if (k < K) step(k, false);
    for (int i = 0; i < MR; ++i) out[i] = _mm512_reduce_add_ps(acc[i]);
  }
};

}  // namespace

void matmul_quant_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  matmul_quant_dispatch<Avx512Core>(x, M, w, bias, y);
}

void dequantize_rows_avx512(const WeightView& w, int n0, int n1, float* scratch, float* out) {
  dequantize_rows_simd(w, n0, n1, scratch, out);
}

void quantize_act_row_avx512(ActQuant a, const float* x, int64_t n, void* dst) { quantize_act_row_blocks(a, x, n, dst); }

}  // namespace nanovllm::kernels
