// AVX-512 matmul: BF16 weights in pair panels through vdpbf16ps (the fast path for every M),
// f32 / f16 / row-major BF16 weights through the dot-product driver (matmul_driver.inc).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>

#include "kernels/kernels_internal.h"

// GCC 12's own AVX-512 headers (reduce, cvtph) trip this warning on their placeholder operands.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace nanovllm::kernels {
namespace {

// ---- matmul, row-major weights (dot-product form) --------------------------------------------
#include "kernels/matmul_driver.inc"

// How far ahead of the bytes being read the streaming W loops prefetch (measured on AVX2:
// bench/NOTES.md).
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

// ---- matmul, BF16 pair panels (Layout::kPairPanels) -------------------------------------------
// The outer-product form of the AVX2 panels with vdpbf16ps: one 64-byte line of a panel is 16
// rows x one pair of k, so an MR x NR tile loads NR lines, broadcasts MR pairs of x (a 32-bit
// embedded broadcast, no register) and issues MR x NR vdpbf16ps, each 32 multiply-adds, with no
// conversion and no horizontal sums. 8 x 3 keeps 24 accumulators + 3 weight vectors in the 32
// zmm: Zen 5 issues two vdpbf16ps per cycle at a latency of ~6, so 12 chains are the minimum,
// and 11 loads per 24 instructions leave the two load ports room. 8-row tiles divide the
// usual batch shapes (16 x 128, 512) evenly.
constexpr int kPairMR = 8, kPairNR = 3;

// x rows [m0, m0 + mr) rounded to bf16 (nearest even) as pairs interleaved [Kp][mr], so a
// tile's broadcasts read one stream (rows K apart would alias in L1 whenever K is a multiple of
// 1024, as on AVX2); an odd K's last pair gets a zero.
static void pack_x_pairs(const float* x, size_t K, int m0, int mr, uint32_t* xt) {
  const size_t Kp = (K + 1) / 2;
  for (int i = 0; i < mr; ++i) {
    const float* s = x + size_t(m0 + i) * K;
    size_t p = 0;
    for (; 2 * p + 32 <= K; p += 16) {
      alignas(64) uint32_t pairs[16];
      _mm512_store_si512(pairs, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(s + 2 * p + 16),
                                                             _mm512_loadu_ps(s + 2 * p)));
      for (int j = 0; j < 16; ++j) xt[(p + size_t(j)) * mr + i] = pairs[j];
    }
    for (; p < Kp; ++p) {
      const uint32_t lo = f32_to_bf16(s[2 * p]), hi = 2 * p + 1 < K ? f32_to_bf16(s[2 * p + 1]) : 0;
      xt[p * mr + i] = lo | hi << 16;
    }
  }
}

// The rows of a 16-row panel that exist, as a store mask.
static inline __mmask16 panel_mask(int rows) {
  return rows >= 16 ? __mmask16(0xffff) : rows <= 0 ? __mmask16(0) : __mmask16((1u << rows) - 1);
}

// y[i][0, nr) = x[i] . W[n0 + j] + bias for MR rows of x (xt, [Kp][MR]) against NR consecutive
// panels (w: the first, `stride` uint16 apart). kStream: the first tile over these panels
// reads them from memory, so it prefetches each panel's stream ahead; later tiles find them in L2.
template <int MR, int NR, bool kStream>
static void pair_tile(const uint32_t* xt, size_t Kp, const uint16_t* w, size_t stride, int nr,
                      const float* bias, float* y, size_t N) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  for (size_t p = 0; p < Kp; ++p) {
    __m512bh wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const uint16_t* line = w + j * stride + p * 32;
      if constexpr (kStream) _mm_prefetch(reinterpret_cast<const char*>(line) + kPrefetchBytes, _MM_HINT_T0);
      wv[j] = (__m512bh)_mm512_loadu_si512(line);
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(int(xt[p * MR + i]));
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xb, wv[j]);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < NR; ++j) {
    const __mmask16 m = panel_mask(nr - 16 * j);
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + 16 * j) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(y + i * N + 16 * j, m, _mm512_add_ps(acc[i][j], b));
  }
}

// One tile of mr (1..kPairMR) rows against np (1..kPairNR) panels.
template <int NR, bool kStream>
static void pair_rows(int mr, const uint32_t* xt, size_t Kp, const uint16_t* w, size_t stride, int nr,
                      const float* bias, float* y, size_t N) {
  switch (mr) {
    case 8: return pair_tile<8, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
    case 7: return pair_tile<7, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
    case 6: return pair_tile<6, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
    case 5: return pair_tile<5, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
    case 4: return pair_tile<4, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
    case 3: return pair_tile<3, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
    case 2: return pair_tile<2, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
    default: return pair_tile<1, NR, kStream>(xt, Kp, w, stride, nr, bias, y, N);
  }
}

template <bool kStream>
static void pair_block(int np, int mr, const uint32_t* xt, size_t Kp, const uint16_t* w, size_t stride,
                       int nr, const float* bias, float* y, size_t N) {
  switch (np) {
    case 3: return pair_rows<3, kStream>(mr, xt, Kp, w, stride, nr, bias, y, N);
    case 2: return pair_rows<2, kStream>(mr, xt, Kp, w, stride, nr, bias, y, N);
    default: return pair_rows<1, kStream>(mr, xt, Kp, w, stride, nr, bias, y, N);
  }
}

// M rows of x cut into ceil(M / kPairMR) tiles of near-equal size.
struct PairRowTiles {
  int count, base, extra;  // the first `extra` tiles have base + 1 rows
  explicit PairRowTiles(int M)
      : count((M + kPairMR - 1) / kPairMR), base(M / count), extra(M % count) {}
  int start(int t) const { return t * base + (t < extra ? t : extra); }
  int rows(int t) const { return base + (t < extra ? 1 : 0); }
};

// Interleaved x per block of row tiles, kept in L2 while W streams past it (W is read once per block).
constexpr size_t kPairXBlockBytes = 256 << 10;

// Below this many rows the matmul is memory-bound: each thread streams one contiguous stripe of
// panels. From it on, groups of panels go out on demand, so a thread that the shared host
// slows down does not hold the other at the barrier (as on AVX2, bench/NOTES.md step 13).
constexpr int kPairDynamicMinRows = 8;

void matmul_pair_panels(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  const int N = w.rows, panels = (N + kPanelRows - 1) / kPanelRows;
  const int groups = (panels + kPairNR - 1) / kPairNR;
  const size_t K = size_t(w.cols), Kp = (K + 1) / 2, stride = Kp * 2 * kPanelRows;
  const auto* base = static_cast<const uint16_t*>(w.data);
  const PairRowTiles tiles(M);
  const int tiles_per_block = Kp ? std::max(1, int(kPairXBlockBytes / (Kp * 4 * kPairMR))) : tiles.count;
  auto* xp = static_cast<uint32_t*>(thread_scratch(size_t(M) * Kp * 4));
  RegionErrors errors;
#pragma omp parallel if (2.0 * M * N * K > kMinParallelFlops)
  {
#pragma omp for schedule(static)
    for (int t = 0; t < tiles.count; ++t) pack_x_pairs(x, K, tiles.start(t), tiles.rows(t), xp + size_t(tiles.start(t)) * Kp);
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    for (int tb = 0; tb < tiles.count; tb += tiles_per_block) {
      const int te = std::min(tb + tiles_per_block, tiles.count);
      // Groups [g0, g1) of kPairNR panels, each swept by every row tile of the block.
      auto sweep = [&](int g0, int g1) {
        for (int g = g0; g < g1; ++g) {
          const int p0 = g * kPairNR, np = std::min(kPairNR, panels - p0), n0 = p0 * kPanelRows;
          const uint16_t* wg = base + size_t(p0) * stride;
          const float* b = bias ? bias + n0 : nullptr;
          for (int i = tb; i < te; ++i) {
            const int m0 = tiles.start(i), mr = tiles.rows(i);
            const uint32_t* xt = xp + size_t(m0) * Kp;
            float* yi = y + size_t(m0) * N + n0;
            if (i == tb) pair_block<true>(np, mr, xt, Kp, wg, stride, N - n0, b, yi, size_t(N));
            else pair_block<false>(np, mr, xt, Kp, wg, stride, N - n0, b, yi, size_t(N));
          }
        }
      };
      if (M >= kPairDynamicMinRows) {
        const int chunk = std::clamp(groups / (nt * 16), 1, 8);
#pragma omp for schedule(dynamic, chunk) nowait
        for (int g = 0; g < groups; ++g) errors.run([&] { sweep(g, g + 1); });
      } else {
        errors.run([&] { sweep(int(int64_t(groups) * t / nt), int(int64_t(groups) * (t + 1) / nt)); });
      }
    }
  }
  errors.rethrow();
}

// ---- matmul, quantized weights, prompt rows (the table's matmul_prompt) -----------------------
// Prefill is compute-bound, and the integer dot products (quant_avx512.cpp) spend more
// instructions scaling sums per 16-32 weights than multiplying. Here each group of kPairNR
// panels (48 W rows) is decoded once into bf16 pair panels in L2 (SIMD decode to f32, then
// rounded to bf16 and transposed into the lines vdpbf16ps reads) and every row tile of x is
// swept over it by the 8 x 3 tile above: the decoding is amortized over all M rows and the
// inner loop is the BF16 GEMM's. Precision: x rounded to bf16 (kBF16) and the decoded weights
// too (a Q8_0 / K-quant value a u + b has more than bf16's 8 significant bits): relative error
// up to 2^-9 per factor, below the int8 rounding of x (kQ8: up to amax / 254 per element).

#include "kernels/transpose_avx512.inc"

// Rows [n0, n0 + 16 np) of quantized w as np pair panels at dst (`stride` uint16 apart); rows
// past w's end are zero. rows: 16 K + K / 8 floats (a panel's rows decoded to f32, row after
// row, then the decoder's scratch). Each 16 rows x 32 columns become 16 bf16 pair vectors, one
// per row, transposed in registers into the 16 lines of the panel that they fill.
static void decode_pair_panels(const WeightView& w, int n0, int np, float* rows, uint16_t* dst, size_t stride) {
  const size_t K = size_t(w.cols);  // whole blocks of 32
  for (int q = 0; q < np; ++q) {
    const int first = n0 + q * kPanelRows, nr = std::min(kPanelRows, w.rows - first);
    dequantize_rows_avx512(w, first, first + nr, rows + kPanelRows * K, rows);
    auto* lines = reinterpret_cast<__m512*>(dst + size_t(q) * stride);
    for (size_t k = 0; k < K; k += 32) {
      __m512 v[16];  // 16 pairs of bf16 per row, moved as 32-bit lanes
      for (int r = 0; r < kPanelRows; ++r) {
        const float* src = rows + size_t(r) * K + k;
        v[r] = r < nr ? (__m512)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src)) : _mm512_setzero_ps();
      }
      transpose16(v);
      for (int j = 0; j < 16; ++j) _mm512_storeu_ps(lines + k / 2 + size_t(j), v[j]);
    }
  }
}

}  // namespace

void matmul_quant_gemm_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  const int N = w.rows, panels = (N + kPanelRows - 1) / kPanelRows;
  const int groups = (panels + kPairNR - 1) / kPairNR;
  const size_t K = size_t(w.cols), Kp = K / 2, stride = Kp * 2 * kPanelRows;
  const PairRowTiles tiles(M);
  auto* xp = static_cast<uint32_t*>(thread_scratch(size_t(M) * Kp * 4));
  RegionErrors errors;
#pragma omp parallel if (2.0 * M * N * K > kMinParallelFlops)
  {
#pragma omp for schedule(static)
    for (int t = 0; t < tiles.count; ++t) pack_x_pairs(x, K, tiles.start(t), tiles.rows(t), xp + size_t(tiles.start(t)) * Kp);
    // This thread's decoded group (slot 1: the caller's slot 0 holds xp), then a panel's rows.
    uint16_t* wg = nullptr;
    errors.run([&] {
      wg = static_cast<uint16_t*>(thread_scratch(kPairNR * stride * 2 + (kPanelRows * K + K / 8) * 4, 1));
    });
    float* rows = wg ? reinterpret_cast<float*>(wg + kPairNR * stride) : nullptr;
    // Groups on demand (a thread the shared host slows down does not hold the other), each
    // decoded once and swept by all of x: x (M K bf16) streams from L2 / L3, the decoded W
    // stays in L2. Re-decoding per L2-sized block of x would cost as much as the products
    // at K = 3072.
#pragma omp for schedule(dynamic, 1) nowait
    for (int g = 0; g < groups; ++g)
      errors.run([&] {
        if (!wg) return;  // no scratch: the error is rethrown below
        const int p0 = g * kPairNR, np = std::min(kPairNR, panels - p0), n0 = p0 * kPanelRows;
        decode_pair_panels(w, n0, np, rows, wg, stride);
        const float* b = bias ? bias + n0 : nullptr;
        for (int i = 0; i < tiles.count; ++i) {
          const int m0 = tiles.start(i);
          pair_block<false>(np, tiles.rows(i), xp + size_t(m0) * Kp, Kp, wg, stride, N - n0, b,
                            y + size_t(m0) * N + n0, size_t(N));
        }
      });
  }
  errors.rethrow();
}

void matmul_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  if (is_quantized(w.dtype)) {
    return matmul_quant_avx512(x, M, w, bias, y);  // quant_avx512.cpp
  }
  // Pair panels are BF16's layout here (preferred_layout); int8 weights use the AVX2 panels, and
  // so do 16-bit and f32 ones repacked while the AVX2 table was active.
  if (w.layout == Layout::kPairPanels) {
    if (w.dtype == DType::BF16) return matmul_pair_panels(x, M, w, bias, y);
    return scalar_table().matmul(x, M, w, bias, y);  // pair panels of another dtype: reference only
  }
  if (w.layout == Layout::kPanels) return avx2_table().matmul(x, M, w, bias, y);
  switch (w.dtype) {
    case DType::BF16: return matmul_with<Bf16DotMatmul>(x, M, w, bias, y);
    case DType::F32: return matmul_with<FmaMatmul<LoadF32x16>>(x, M, w, bias, y);
    case DType::F16: return matmul_with<FmaMatmul<LoadF16x16>>(x, M, w, bias, y);
    case DType::I8: return scalar_table().matmul(x, M, w, bias, y);  // row-major int8: reference only
    default: break;  // quantized: handled above
  }
}

// Prompt rows: quantized weights through the GEMM above, every other dtype as decode rows.
void matmul_prompt_avx512(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  if (is_quantized(w.dtype)) return matmul_quant_gemm_avx512(x, M, w, bias, y);
  matmul_avx512(x, M, w, bias, y);
}

}  // namespace nanovllm::kernels
