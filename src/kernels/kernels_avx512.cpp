// AVX-512 kernels with BF16 dot products (Cooper Lake, Sapphire Rapids, Zen 4); the rest come from AVX2.
#include <immintrin.h>
#include <omp.h>

#include <cstdlib>

#include "kernels/kernels_internal.h"

// GCC 12's own AVX-512 headers (reduce, cvtph) trip this warning on their placeholder operands.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace nanovllm::kernels {
namespace {

// ---- matmul -------------------------------------------------------------------------------
#include "kernels/matmul_driver.inc"

// How far ahead of the row being read the M = 1 path prefetches W (measured on AVX2: bench/NOTES.md).
constexpr size_t kPrefetchBytes = 1024;

// BF16 weights: x is rounded to bf16 once per call and each step is one vdpbf16ps per
// (x row, W row) pair covering 32 products. The 4 x 4 tile holds 16 accumulators, 4 weight
// vectors and one x vector: enough independent chains to cover the instruction's latency.
struct Bf16DotMatmul {
  using XT = uint16_t;
  static constexpr int kStep = 32, kMR = 4, kNR = 4;
  static constexpr bool kPackX = true;

  // x rows to bf16 (round to nearest even), full 32-blocks only; the K tail is done in f32.
  static void pack(const float* x, int m0, int m1, int K, uint16_t* xp) {
    for (int m = m0; m < m1; ++m) {
      const float* s = x + size_t(m) * K;
      uint16_t* d = xp + size_t(m) * K;
      for (int k = 0; k + 32 <= K; k += 32) {
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + k + 16), _mm512_loadu_ps(s + k));
        _mm512_storeu_si512(d + k, (__m512i)v);
      }
    }
  }

  template <int MR, int NR>
  static void dot(const uint16_t* x, size_t K, const uint8_t* w, size_t Kmain, float out[][8]) {
    const auto* wr = reinterpret_cast<const uint16_t*>(w);
    __m512 acc[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < Kmain; k += 32) {
      __m512i wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = _mm512_loadu_si512(wr + j * K + k);
      for (int i = 0; i < MR; ++i) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i * K + k);
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv, (__m512bh)wv[j]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
  }

  // M = 1: four chains over one W row, prefetching ahead in the sequential stream of rows.
  static float row_dot(const uint16_t* x, const uint8_t* w, size_t Kmain) {
    const auto* wr = reinterpret_cast<const uint16_t*>(w);
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    size_t k = 0;
    for (; k + 128 <= Kmain; k += 128) {
      _mm_prefetch(reinterpret_cast<const char*>(wr + k) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(wr + k) + kPrefetchBytes + 64, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(wr + k) + kPrefetchBytes + 128, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(wr + k) + kPrefetchBytes + 192, _MM_HINT_T0);
      for (int u = 0; u < 4; ++u)
        a[u] = _mm512_dpbf16_ps(a[u], (__m512bh)_mm512_loadu_si512(x + k + 32 * u),
                                (__m512bh)_mm512_loadu_si512(wr + k + 32 * u));
    }
    for (; k < Kmain; k += 32)
      a[0] = _mm512_dpbf16_ps(a[0], (__m512bh)_mm512_loadu_si512(x + k), (__m512bh)_mm512_loadu_si512(wr + k));
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
  }
};

struct LoadF32x16 {
  static constexpr size_t kBytes = 4;
  static __m512 vec(const uint8_t* w, size_t i) { return _mm512_loadu_ps(reinterpret_cast<const float*>(w) + i); }
};

struct LoadF16x16 {
  static constexpr size_t kBytes = 2;
  static __m512 vec(const uint8_t* w, size_t i) {
    const auto* p = reinterpret_cast<const __m256i*>(reinterpret_cast<const uint16_t*>(w) + i);
    return _mm512_cvtph_ps(_mm256_loadu_si256(p));
  }
};

// F32 and F16 weights: full f32 FMA on 16 lanes, x used as is.
template <class Load>
struct FmaMatmul {
  using XT = float;
  static constexpr int kStep = 16, kMR = 4, kNR = 4;
  static constexpr bool kPackX = false;
  static void pack(const float*, int, int, int, float*) {}

  template <int MR, int NR>
  static void dot(const float* x, size_t K, const uint8_t* w, size_t Kmain, float out[][8]) {
    __m512 acc[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < Kmain; k += 16) {
      __m512 wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = Load::vec(w + K * Load::kBytes * j, k);
      for (int i = 0; i < MR; ++i) {
        const __m512 xv = _mm512_loadu_ps(x + i * K + k);
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
  }

  // M = 1: four chains over one W row, prefetching ahead in the sequential stream of rows.
  static float row_dot(const float* x, const uint8_t* w, size_t Kmain) {
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    size_t k = 0;
    for (; k + 64 <= Kmain; k += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(w + k * Load::kBytes) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w + k * Load::kBytes) + kPrefetchBytes + 64, _MM_HINT_T0);
      for (int u = 0; u < 4; ++u)
        a[u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16 * u), Load::vec(w, k + 16 * u), a[u]);
    }
    for (; k < Kmain; k += 16) a[0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), Load::vec(w, k), a[0]);
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
  }
};

void matmul_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  // Panels are the AVX2 layout: int8 weights use it here too (preferred_layout), 16-bit and f32
  // ones only when the ISA was switched after the weights were repacked.
  if (is_quantized(w.dtype)) return matmul_quant_avx512(x, M, w, bias, y);  // quant_avx512.cpp
  if (w.layout == Layout::kPanels) return avx2_table().matmul(x, M, w, bias, y);
  switch (w.dtype) {
    case DType::BF16: return matmul_with<Bf16DotMatmul>(x, M, w, bias, y);
    case DType::F32: return matmul_with<FmaMatmul<LoadF32x16>>(x, M, w, bias, y);
    case DType::F16: return matmul_with<FmaMatmul<LoadF16x16>>(x, M, w, bias, y);
    case DType::I8: return scalar_table().matmul(x, M, w, bias, y);  // row-major int8: reference only
    default: break;  // quantized: handled above
  }
}

}  // namespace

const KernelTable& avx512_table() {
  static const KernelTable t = [] {
    KernelTable k = avx2_table();
    k.name = "avx512bf16";
    // 16-bit and f32 weights row by row; int8 through the AVX2 panels. BF16 weights multiply
    // activations rounded to bf16 (Bf16DotMatmul); quantized ones (rows, as stored) activations
    // rounded to int8 (kQ8, from the AVX2 table); every other dtype keeps them f32.
    k.layout[int(DType::F32)] = k.layout[int(DType::BF16)] = k.layout[int(DType::F16)] = Layout::kRows;
    k.layout[int(DType::I8)] = Layout::kPanels;
    k.precision[int(DType::BF16)] = Precision::kBF16;
    k.matmul = matmul_avx512;
    return k;
  }();
  return t;
}

}  // namespace nanovllm::kernels
