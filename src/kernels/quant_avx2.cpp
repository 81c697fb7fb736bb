// Quantized matmul on AVX2 (Haswell / Zen and later): int8 dot products by vpmaddubsw (u8 x s8 into
// pairs of int16) and vpmaddwd, one group of 32 weights per step. See quant_simd.inc.
#include <immintrin.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <vector>

#include "kernels/kernels_internal.h"

namespace nanovllm::kernels {
namespace {

#include "kernels/quant_simd.inc"

static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// 8 int32 sums of 4 products u * qx each. Unsigned u is at most 63 (Q6_K), so a pair of
// products cannot saturate vpmaddubsw's int16; signed Q8_0 weights go through |w| and
// qx * sign(w) (|qx| <= 127, so the pair stays below 2 * 128 * 127).
template <bool kSigned>
static inline __m256i dot32(__m256i u, __m256i x) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (kSigned) return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(u, u), _mm256_sign_epi8(x, u)), ones);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), ones);
}


struct Avx2Core {
  static constexpr int kMR = 4;  // 4 accumulators, u, the scales: within 16 ymm
  static constexpr bool kUnsignedW = false;  // Q8_0 through dot32<true>

  template <class Q, int MR>
  static void rows(const uint8_t* wrow, size_t K, const QuantX& xq, int m0, const float* a4, float* out) {
    __m256 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_ps();
    for (size_t k = 0; k < K; k += 32) {
      const __m256i u = row_group<Q>(wrow, k);
      const __m256 a = _mm256_loadu_ps(a4 + k / 4);
      for (int i = 0; i < MR; ++i) {
        const size_t row = size_t(m0 + i);
        const __m256i p = dot32<Q::kSigned>(u, load256(xq.q + row * K + k));
        acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(p), a), _mm256_loadu_ps(xq.d4 + row * (K / 4) + k / 4), acc[i]);
      }
    }
    for (int i = 0; i < MR; ++i) out[i] = hsum8(acc[i]);
  }
};

}  // namespace

void matmul_quant_avx2(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  matmul_quant_dispatch<Avx2Core>(x, M, w, bias, y);
}

void dequantize_rows_avx2(const WeightView& w, int n0, int n1, float* scratch, float* out) {
  dequantize_rows_simd(w, n0, n1, scratch, out);
}

void quantize_act_row_avx2(ActQuant a, const float* x, int64_t n, void* dst) { quantize_act_row_blocks(a, x, n, dst); }

}  // namespace nanovllm::kernels
