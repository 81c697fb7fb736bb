// AVX-512 element-wise kernels: rmsnorm, silu·mul, rope and the KV-cache store, 16 lanes at a
// time with masked tails (no scalar remainder loops). Same formulas and thread thresholds as
// the AVX2 versions (kernels_avx2.cpp); the scalar table is the oracle (isa_vs_scalar_test).
#include <immintrin.h>
#include <math.h>  // C expf/cosf/sinf/sqrtf: see kernels_avx2.cpp (no shared inline copies)
#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "kernels/kernels_internal.h"

namespace nanovllm::kernels {
namespace {

#include "kernels/scratch.inc"

// The first n of 16 lanes.
static inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

#include "kernels/exp_avx512.inc"

// 16 floats to bf16, round to nearest even, NaN kept NaN with the quiet bit set: bit-identical
// to f32_to_bf16. Not vcvtneps2bf16, which flushes subnormal inputs to zero.
static inline __m256i f32x16_to_bf16(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, q));
}

}  // namespace

void silu_mul_avx512(const float* gate_up, int rows, int n, float* out) {
#pragma omp parallel for schedule(static) if (double(rows) * n > 1 << 16)
  for (int r = 0; r < rows; ++r) {
    const float* g = gate_up + size_t(r) * 2 * n;
    const float* u = g + n;
    float* o = out + size_t(r) * n;
    for (int i = 0; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      const __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
      const __m512 den = _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv)));
      _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(_mm512_div_ps(gv, den), _mm512_maskz_loadu_ps(m, u + i)));
    }
  }
}

void rmsnorm_avx512(const float* x, const float* weight, int rows, int n, float eps, float* out) {
#pragma omp parallel for schedule(static) if (double(rows) * n > 1 << 17)
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + size_t(r) * n;
    float* o = out + size_t(r) * n;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
      const __m512 u = _mm512_loadu_ps(xr + i), v = _mm512_loadu_ps(xr + i + 16);
      a0 = _mm512_fmadd_ps(u, u, a0);
      a1 = _mm512_fmadd_ps(v, v, a1);
    }
    for (; i < n; i += 16) {
      const __m512 u = _mm512_maskz_loadu_ps(tail_mask(n - i), xr + i);
      a0 = _mm512_fmadd_ps(u, u, a0);
    }
    const float inv = 1.f / sqrtf(_mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) / float(n) + eps);
    const __m512 iv = _mm512_set1_ps(inv);
    for (i = 0; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), iv),
                                                    _mm512_maskz_loadu_ps(m, weight + i)));
    }
  }
}

namespace {

// Rotates the n_heads heads of one token by precomputed cs = (cos[half], sin[half]).
static void rope_token(float* x, int n_heads, int head_dim, const float* cs) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* a = x + size_t(h) * head_dim;
    float* b = a + half;
    for (int i = 0; i < half; i += 16) {
      const __mmask16 m = tail_mask(half - i);
      const __m512 c = _mm512_maskz_loadu_ps(m, cs + i), sn = _mm512_maskz_loadu_ps(m, cs + half + i);
      const __m512 av = _mm512_maskz_loadu_ps(m, a + i), bv = _mm512_maskz_loadu_ps(m, b + i);
      _mm512_mask_storeu_ps(a + i, m, _mm512_fmsub_ps(av, c, _mm512_mul_ps(bv, sn)));
      _mm512_mask_storeu_ps(b + i, m, _mm512_fmadd_ps(bv, c, _mm512_mul_ps(av, sn)));
    }
  }
}

// n floats to bf16, 16 at a time (elementwise_driver.inc).
static void store_bf16_row(uint16_t* dst, const float* src, size_t n) {
  for (size_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(int(n - j < 16 ? n - j : 16));
    _mm256_mask_storeu_epi16(dst + j, m, f32x16_to_bf16(_mm512_maskz_loadu_ps(m, src + j)));
  }
}

#include "kernels/elementwise_driver.inc"

}  // namespace

void rope_avx512(float* x, int n_tokens, int n_heads, int head_dim, const int* positions, const float* inv_freq) {
  rope_tokens(x, n_tokens, n_heads, head_dim, positions, inv_freq);
}

void kv_store_avx512(const KVLayer& kv, const float* k, const float* v, int n, const int* slots) {
  kv_store_rows(kv, k, v, n, slots);
}

}  // namespace nanovllm::kernels
