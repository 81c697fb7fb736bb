// AVX2 + FMA kernels (Haswell / Zen and later); kernels without an AVX2 version use the scalar one.
#include <immintrin.h>
#include <math.h>  // C expf/cosf/...: the std:: float overloads are inline functions whose
                   // AVX2-compiled copies the linker could share with the scalar path
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "kernels/kernels_internal.h"

namespace nanovllm::kernels {
namespace {

// 16 BF16 values widened to f32 from one 256-bit load: BF16 is the top half of an f32, so in a
// 32-bit lane holding two of them a shift gives the even-indexed value and a mask the odd one.
static inline void widen_bf16x16(const void* p, __m256& even, __m256& odd) {
  const __m256i v = _mm256_loadu_si256(static_cast<const __m256i*>(p));
  even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int(0xffff0000u))));
}

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// ---- matmul -------------------------------------------------------------------------------
#include "kernels/matmul_driver.inc"

// How far ahead of the bytes being read the streaming W loops prefetch (row_dot, packed_tile;
// tuned: bench/NOTES.md).
constexpr size_t kPrefetchBytes = 1024;

// Weight loaders: the 16 weights W[i, i + 16) as two 8-lane halves, in the order x is packed.
struct LoadBF16 {
  static constexpr size_t kBytes = 2;
  // 16 weights cost one load and two ALU ops (widen_bf16x16); the x panel is de-interleaved to
  // match (evens, then odds: pack_even_odd).
  template <int H>
  static __m256 half(const uint8_t* w, size_t i) {
    __m256 even, odd;
    widen_bf16x16(reinterpret_cast<const uint16_t*>(w) + i, even, odd);
    return H == 0 ? even : odd;
  }
};

struct LoadF32 {
  static constexpr size_t kBytes = 4;
  template <int H>
  static __m256 half(const uint8_t* w, size_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + i + 8 * H);
  }
};

struct LoadF16 {
  static constexpr size_t kBytes = 2;
  template <int H>
  static __m256 half(const uint8_t* w, size_t i) {
    const auto* p = reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(w) + i + 8 * H);
    return _mm256_cvtph_ps(_mm_loadu_si128(p));
  }
};

// Each full 16-block of an x row reordered to (evens, odds), matching LoadBF16.
static void pack_even_odd(const float* x, int m0, int m1, int K, float* xp) {
  const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  for (int m = m0; m < m1; ++m) {
    const float* s = x + size_t(m) * K;
    float* d = xp + size_t(m) * K;
    for (int k = 0; k + 16 <= K; k += 16) {
      const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(s + k), idx);      // e0-3 o0-3
      const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(s + k + 8), idx);  // e4-7 o4-7
      _mm256_storeu_ps(d + k, _mm256_permute2f128_ps(a, b, 0x20));
      _mm256_storeu_ps(d + k + 8, _mm256_permute2f128_ps(a, b, 0x31));
    }
  }
}

// f32 FMA over 16-element steps, dot-product form (no packing of W): a 4 x 3 tile keeps 12
// accumulators (enough chains for 2 FMA pipes x 4 cycles latency), 3 weights and one x vector
// in the 16 ymm registers; 4 rows so that batch-4 decode widens each bf16 W row only once. Used for M = 1 (row_dot) and small M; see the panel path below.
template <class Load, bool kPack>
struct Avx2Matmul {
  using XT = float;
  static constexpr int kStep = 16, kMR = 4, kNR = 3;
  static constexpr bool kPackX = kPack;
  static void pack(const float* x, int m0, int m1, int K, float* xp) { pack_even_odd(x, m0, m1, K, xp); }

  template <int MR, int NR>
  static void dot(const float* x, size_t K, const uint8_t* w, size_t Kmain, float out[][8]) {
    __m256 acc[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
    for (size_t k = 0; k < Kmain; k += 16) {
      step<0, MR, NR>(x, K, w, k, acc);
      step<1, MR, NR>(x, K, w, k, acc);
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) out[i][j] = hsum(acc[i][j]);
  }

  // One x row against one W row with four independent chains, for M = 1 where rows are
  // streamed one after another; the prefetch runs ahead in that single sequential stream.
  static float row_dot(const float* x, const uint8_t* w, size_t Kmain) {
    __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    size_t k = 0;
    for (; k + 32 <= Kmain; k += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(w + k * Load::kBytes + kPrefetchBytes), _MM_HINT_T0);
      a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), Load::template half<0>(w, k), a[0]);
      a[1] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), Load::template half<1>(w, k), a[1]);
      a[2] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 16), Load::template half<0>(w, k + 16), a[2]);
      a[3] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 24), Load::template half<1>(w, k + 16), a[3]);
    }
    for (; k < Kmain; k += 16) {
      a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k), Load::template half<0>(w, k), a[0]);
      a[1] = _mm256_fmadd_ps(_mm256_loadu_ps(x + k + 8), Load::template half<1>(w, k), a[1]);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
  }

  template <int H, int MR, int NR>
  static inline void step(const float* x, size_t K, const uint8_t* w, size_t k, __m256 (&acc)[MR][NR]) {
    __m256 wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Load::template half<H>(w + K * Load::kBytes * j, k);
    for (int i = 0; i < MR; ++i) {
      const __m256 xv = _mm256_loadu_ps(x + i * K + k + 8 * H);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
};

// ---- matmul, panel path (compute-bound M) -------------------------------------------------
// The BLIS-style outer-product form: a panel of 16 W rows is converted to f32 and transposed
// once into Wp[K][16]; a 6 x 16 register tile then does 12 FMAs per k for 2 weight loads and 6
// broadcasts of x, with no per-tile conversion or horizontal sums.

constexpr int kPanelN = 16, kPanelMR = 6;

// 8 consecutive weights of a row as f32, natural order.
static inline __m256 load_w8(const void* w, DType t, size_t i) {
  if (t == DType::F32) return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  const auto* p = reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i);
  if (t == DType::F16) return _mm256_cvtph_ps(_mm_loadu_si128(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p)), 16));
}

static inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 8; i += 4)
    for (int j = 0; j < 2; ++j) {
      u[i + j] = _mm256_shuffle_ps(t[i + j], t[i + j + 2], 0x44);
      u[i + j + 2] = _mm256_shuffle_ps(t[i + j], t[i + j + 2], 0xee);
    }
  // u[0..3] hold columns (0,4) (2,6) (1,5) (3,7) of rows 0-3 in their halves; u[4..7] of rows 4-7.
  const int order[4] = {0, 2, 1, 3};
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[order[c]], u[4 + order[c]], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[order[c]], u[4 + order[c]], 0x31);
  }
}

// Wp[k][j] = W[n0 + j][k] for j < nr, 0 beyond.
static void pack_panel(const WeightView& w, int n0, int nr, float* wp) {
  const size_t K = size_t(w.cols), K8 = K & ~size_t(7), esz = dtype_size(w.dtype);
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int jb = 0; jb < kPanelN; jb += 8) {
    if (jb + 8 <= nr) {
      for (size_t k = 0; k < K8; k += 8) {
        __m256 r[8];
        for (int j = 0; j < 8; ++j) r[j] = load_w8(base + size_t(n0 + jb + j) * K * esz, w.dtype, k);
        transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(wp + (k + i) * kPanelN + jb, r[i]);
      }
      for (size_t k = K8; k < K; ++k)
        for (int j = 0; j < 8; ++j)
          wp[k * kPanelN + jb + j] = load_as_f32(w.data, w.dtype, size_t(n0 + jb + j) * K + k);
    } else {
      for (size_t k = 0; k < K; ++k)
        for (int j = 0; j < 8; ++j)
          wp[k * kPanelN + jb + j] = jb + j < nr ? load_as_f32(w.data, w.dtype, size_t(n0 + jb + j) * K + k) : 0.f;
    }
  }
}

// y[i][0, nr) (+)= x[i][k0, k1) . Wp[k0, k1) for MR rows of x: the first K slice starts from
// the bias, later ones from the partial sums already in y.
template <int MR>
static void panel_tile(const float* x, size_t K, size_t k0, size_t k1, const float* wp, int nr,
                       const float* bias, bool first, float* y, size_t N) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
  const __m256 z0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
  const __m256 z1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
  // All loops over MR fully unrolled so the accumulators stay in registers (with a variable
  // index GCC 12 mirrors every accumulator to the stack on every k: 2.4x slower).
  __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    lo[i] = first ? z0 : _mm256_maskload_ps(y + i * N, m0);
    hi[i] = first ? z1 : _mm256_maskload_ps(y + i * N + 8, m1);
  }
  for (size_t k = k0; k < k1; ++k) {
    const __m256 b0 = _mm256_loadu_ps(wp + k * kPanelN), b1 = _mm256_loadu_ps(wp + k * kPanelN + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(x + i * K + k);
      lo[i] = _mm256_fmadd_ps(a, b0, lo[i]);
      hi[i] = _mm256_fmadd_ps(a, b1, hi[i]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_maskstore_ps(y + i * N, m0, lo[i]);
    _mm256_maskstore_ps(y + i * N + 8, m1, hi[i]);
  }
}

struct PanelJob {
  const float* x;
  size_t K, N;
  const float* wp;
  int n0, nr;
  const float* bias;
  float* y;
};

static void panel_rows(const PanelJob& j, int m0, int mr, size_t k0, size_t k1) {
  const float* xr = j.x + size_t(m0) * j.K;
  const float* b = j.bias ? j.bias + j.n0 : nullptr;
  float* yr = j.y + size_t(m0) * j.N + j.n0;
  const bool first = k0 == 0;
  switch (mr) {
    case 6: return panel_tile<6>(xr, j.K, k0, k1, j.wp, j.nr, b, first, yr, j.N);
    case 5: return panel_tile<5>(xr, j.K, k0, k1, j.wp, j.nr, b, first, yr, j.N);
    case 4: return panel_tile<4>(xr, j.K, k0, k1, j.wp, j.nr, b, first, yr, j.N);
    case 3: return panel_tile<3>(xr, j.K, k0, k1, j.wp, j.nr, b, first, yr, j.N);
    case 2: return panel_tile<2>(xr, j.K, k0, k1, j.wp, j.nr, b, first, yr, j.N);
    default: return panel_tile<1>(xr, j.K, k0, k1, j.wp, j.nr, b, first, yr, j.N);
  }
}

// Depth of a K slice: its part of a panel (KC x 16 floats = 256 KiB) stays in L2 while every
// row tile of x passes over it. L1-sized slices (128-512) measured no better here (NOTES.md),
// so only long rows (K > 4096, e.g. Llama-3.2-1B's down_proj at 8192) are sliced.
constexpr size_t kPanelKC = 4096;

// Each thread owns a stripe of panels; each panel is packed once and swept by all rows of x.
static void matmul_panels(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  const int N = w.rows, panels = (N + kPanelN - 1) / kPanelN;
  const size_t K = size_t(w.cols);
  RegionErrors errors;
#pragma omp parallel if (2.0 * M * N * K > kMinParallelFlops)
  {
    float* wp = nullptr;
    bool ready = false;  // K = 0 legitimately gets no buffer
    errors.run([&] {
      wp = static_cast<float*>(thread_scratch(K * kPanelN * sizeof(float)));
      ready = true;
    });
#pragma omp for schedule(static)
    for (int p = 0; p < panels; ++p) {
      if (!ready) continue;  // no panel buffer: the error is rethrown below
      const int n0 = p * kPanelN, nr = N - n0 < kPanelN ? N - n0 : kPanelN;
      pack_panel(w, n0, nr, wp);
      const PanelJob job{x, K, size_t(N), wp, n0, nr, bias, y};
      for (size_t k0 = 0; k0 < K || k0 == 0; k0 += kPanelKC) {  // K = 0 still writes the bias
        const size_t k1 = k0 + kPanelKC < K ? k0 + kPanelKC : K;
        for (int m0 = 0; m0 < M; m0 += kPanelMR)
          panel_rows(job, m0, M - m0 < kPanelMR ? M - m0 : kPanelMR, k0, k1);
      }
    }
  }
  errors.rethrow();
}

// ---- matmul, repacked weights (Layout::kPanels) ---------------------------------------------
// W is [panels][K][16], one column of 16 rows per k (see Layout), so every shape reads W once
// in a single sequential stream per thread, with no per-call conversion or transposition. An
// MR x 16 register tile broadcasts x[i][k] and does 2 MR FMAs per column. Below 4 rows the k
// loop runs U interleaved chains so that at least 8 accumulators cover the FMA latency
// (2 pipes x 4 cycles); otherwise 1-3 row tiles would wait on their own sums.

// Column k of a panel as two 8-lane f32 halves: rows 0-7 and rows 8-15.
struct PanelBF16 {
  static constexpr size_t kBytes = 2;
  static inline void load(const uint8_t* p, size_t k, __m256& lo, __m256& hi) {
    widen_bf16x16(p + k * 32, lo, hi);  // rows 0-7 in the even slots, 8-15 in the odd ones
  }
};

struct PanelF32 {
  static constexpr size_t kBytes = 4;
  static inline void load(const uint8_t* p, size_t k, __m256& lo, __m256& hi) {
    lo = _mm256_loadu_ps(reinterpret_cast<const float*>(p + k * 64));
    hi = _mm256_loadu_ps(reinterpret_cast<const float*>(p + k * 64 + 32));
  }
};

// int8 rows: each half sign-extended to 32 bits and converted; the row scales are applied to
// the finished sums (packed_tile's epilogue).
struct PanelI8 {
  static constexpr size_t kBytes = 1;
  static inline void load(const uint8_t* p, size_t k, __m256& lo, __m256& hi) {
    // Two 8-byte loads, which vpmovsxbd takes as its memory operand: no extra shuffle.
    const uint8_t* c = p + k * 16;
    lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c))));
    hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(c + 8))));
  }
};

struct PanelF16 {
  static constexpr size_t kBytes = 2;
  static inline void load(const uint8_t* p, size_t k, __m256& lo, __m256& hi) {
    lo = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k * 32)));
    hi = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k * 32 + 16)));
  }
};

// Column k of an int8 panel, widened to lo / hi, stored as PanelBF16 reads it: exact, since
// |q| <= 127 needs 7 significant bits.
static inline void store_bf16_column(uint8_t* out, size_t k, __m256 lo, __m256 hi) {
  const __m256i even = _mm256_srli_epi32(_mm256_castps_si256(lo), 16);
  const __m256i col = _mm256_blend_epi16(even, _mm256_castps_si256(hi), 0xAA);
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + k * 32), col);
}

// y[i][0, nr) = x[i] . W[n0 + j] (* scale, + bias) for MR rows of x against one panel; xt holds the
// MR rows interleaved, [K][MR], so the broadcasts read one contiguous stream (rows of x
// K floats apart would map to the same L1 sets whenever K is a multiple of 1024).
// kCopy (int8 panels): also writes the panel as BF16 into copy, for the next row tiles.
template <class L, int MR, int U, bool kCopy = false>
static void packed_tile(const float* xt, size_t K, const uint8_t* panel, int nr, const float* scale,
                        const float* bias, float* y, size_t N, uint8_t* copy = nullptr) {
  constexpr size_t kColBytes = kPanelRows * L::kBytes;
  __m256 lo[U][MR], hi[U][MR];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) lo[u][i] = hi[u][i] = _mm256_setzero_ps();
  size_t k = 0;
  for (; k + U <= K; k += U) {
    // The first tile of a panel streams it from memory; later ones find it in L2.
#pragma GCC unroll 4
    for (size_t b = 0; b < U * kColBytes; b += 64)
      _mm_prefetch(reinterpret_cast<const char*>(panel + k * kColBytes + b + kPrefetchBytes), _MM_HINT_T0);
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      __m256 w0, w1;
      L::load(panel, k + u, w0, w1);
      if constexpr (kCopy) store_bf16_column(copy, k + u, w0, w1);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 a = _mm256_broadcast_ss(xt + (k + u) * MR + i);
        lo[u][i] = _mm256_fmadd_ps(a, w0, lo[u][i]);
        hi[u][i] = _mm256_fmadd_ps(a, w1, hi[u][i]);
      }
    }
  }
  for (; k < K; ++k) {
    __m256 w0, w1;
    L::load(panel, k, w0, w1);
    if constexpr (kCopy) store_bf16_column(copy, k, w0, w1);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(xt + k * MR + i);
      lo[0][i] = _mm256_fmadd_ps(a, w0, lo[0][i]);
      hi[0][i] = _mm256_fmadd_ps(a, w1, hi[0][i]);
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
  const __m256 b0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
  const __m256 b1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 c0 = scale ? _mm256_maskload_ps(scale, m0) : one;
  const __m256 c1 = scale ? _mm256_maskload_ps(scale + 8, m1) : one;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    __m256 s0 = lo[0][i], s1 = hi[0][i];
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) {
      s0 = _mm256_add_ps(s0, lo[u][i]);
      s1 = _mm256_add_ps(s1, hi[u][i]);
    }
    _mm256_maskstore_ps(y + i * N, m0, _mm256_fmadd_ps(s0, c0, b0));
    _mm256_maskstore_ps(y + i * N + 8, m1, _mm256_fmadd_ps(s1, c1, b1));
  }
}

template <class L, bool kCopy = false>
static void packed_rows(const float* x, size_t K, const uint8_t* panel, int nr, const float* scale,
                        const float* bias, float* y, size_t N, int mr, uint8_t* copy = nullptr) {
  switch (mr) {
    case 1: return packed_tile<L, 1, 4, kCopy>(x, K, panel, nr, scale, bias, y, N, copy);
    case 2: return packed_tile<L, 2, 2, kCopy>(x, K, panel, nr, scale, bias, y, N, copy);
    case 3: return packed_tile<L, 3, 2, kCopy>(x, K, panel, nr, scale, bias, y, N, copy);
    case 4: return packed_tile<L, 4, 1, kCopy>(x, K, panel, nr, scale, bias, y, N, copy);
    case 5: return packed_tile<L, 5, 1, kCopy>(x, K, panel, nr, scale, bias, y, N, copy);
    default: return packed_tile<L, 6, 1, kCopy>(x, K, panel, nr, scale, bias, y, N, copy);
  }
}

// The same with one FMA chain per row and lane (U = 1) at every tile height: a row's sums are
// then made in k order whatever rows share its tile, so its result does not depend on M (what
// the quantized prompt-row GEMM promises, RowRole). packed_rows splits K over 2-4 chains for
// tiles of 1-3 rows, which the last tile of many M is.
template <class L>
static void packed_rows_in_order(const float* x, size_t K, const uint8_t* panel, int nr, const float* bias, float* y,
                                 size_t N, int mr) {
  switch (mr) {
    case 1: return packed_tile<L, 1, 1>(x, K, panel, nr, nullptr, bias, y, N);
    case 2: return packed_tile<L, 2, 1>(x, K, panel, nr, nullptr, bias, y, N);
    case 3: return packed_tile<L, 3, 1>(x, K, panel, nr, nullptr, bias, y, N);
    default: return packed_rows<L>(x, K, panel, nr, nullptr, bias, y, N, mr);  // 4-6 rows: U = 1 already
  }
}

constexpr size_t kXBlockBytes = 256 << 10;

// M rows of x cut into ceil(M / 6) tiles of near-equal size (8 rows: 4 + 4, not 6 + 2).
struct RowTiles {
  int count, base, extra;  // the first `extra` tiles have base + 1 rows
  explicit RowTiles(int M)
      : count((M + kPanelMR - 1) / kPanelMR), base(M / count), extra(M % count) {}
  int start(int t) const { return t * base + (t < extra ? t : extra); }
  int rows(int t) const { return base + (t < extra ? 1 : 0); }
};

// Rows [m0, m0 + mr) of x interleaved, [K][mr], at xp + m0 K: what packed_tile broadcasts from.
static void interleave_rows(const float* x, size_t K, int m0, int mr, float* xp) {
  float* dst = xp + size_t(m0) * K;
  for (size_t k = 0; k < K; ++k)
    for (int i = 0; i < mr; ++i) dst[k * mr + i] = x[size_t(m0 + i) * K + k];
}

// Below this many rows a matmul is memory-bound: each thread owns a contiguous stripe of panels
// (one sequential stream of W). From it on, the work is compute and panels go out in small
// groups on demand, so a thread the shared host slows down does not hold the other at the
// barrier (batch-16 matmuls -11 % time, bench/NOTES.md).
constexpr int kDynamicMinRows = 8;

// Every row tile of x is swept over each panel while it is hot. x is interleaved per tile once
// per call (M = 1 needs no copy).
template <class L>
static void matmul_packed_with(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  const int N = w.rows, panels = (N + kPanelRows - 1) / kPanelRows;
  const size_t K = size_t(w.cols), panel_bytes = K * kPanelRows * L::kBytes;
  const auto* base = static_cast<const uint8_t*>(w.data);
  const RowTiles tiles(M);
  // Row tiles swept over a stripe of W together: their interleaved x (up to kXBlockBytes)
  // stays in L2 while W streams past; W is read once per block.
  const int tiles_per_block =
      K ? std::max(1, int(kXBlockBytes / (K * sizeof(float) * kPanelMR))) : tiles.count;
  float* xp = M > 1 ? static_cast<float*>(thread_scratch(size_t(M) * K * sizeof(float))) : nullptr;
  RegionErrors errors;  // the int8 copy buffer is allocated inside the region
#pragma omp parallel if (2.0 * M * N * K > kMinParallelFlops)
  {
    if (M > 1) {
#pragma omp for schedule(static)
      for (int t = 0; t < tiles.count; ++t) interleave_rows(x, K, tiles.start(t), tiles.rows(t), xp);
    }
    const float* xs = M > 1 ? xp : x;
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    for (int tb = 0; tb < tiles.count; tb += tiles_per_block) {
      const int te = tb + tiles_per_block < tiles.count ? tb + tiles_per_block : tiles.count;
      // Several row tiles on an int8 panel: the first converts it and leaves a BF16 copy (32 KiB
      // at K = 1024, in L2) that the others widen with a shift and a mask instead of two
      // conversions per 8 weights, which cost as much as the FMAs they feed.
      auto sweep = [&](int p0, int p1) {
        uint8_t* copy = std::is_same_v<L, PanelI8> && te - tb > 1
                            ? static_cast<uint8_t*>(thread_scratch(K * kPanelRows * 2, 1)) : nullptr;
        for (int p = p0; p < p1; ++p) {
          const int n0 = p * kPanelRows, nr = N - n0 < kPanelRows ? N - n0 : kPanelRows;
          const uint8_t* wp = base + size_t(p) * panel_bytes;
          const float* scale = w.scales ? w.scales + n0 : nullptr;
          const float* b = bias ? bias + n0 : nullptr;
          for (int i = tb; i < te; ++i) {
            const int m0 = tiles.start(i), mr = tiles.rows(i);
            const float* xi = xs + size_t(m0) * K;
            float* yi = y + size_t(m0) * N + n0;
            if (!copy) packed_rows<L>(xi, K, wp, nr, scale, b, yi, size_t(N), mr);
            else if (i == tb) packed_rows<L, true>(xi, K, wp, nr, scale, b, yi, size_t(N), mr, copy);
            else packed_rows<PanelBF16>(xi, K, copy, nr, scale, b, yi, size_t(N), mr);
          }
        }
      };
      if (M >= kDynamicMinRows) {
        // Up to 16 panels per group, at least 16 groups per thread.
        const int group = std::clamp(panels / (nt * 16), 1, 16), groups = (panels + group - 1) / group;
#pragma omp for schedule(dynamic) nowait
        for (int g = 0; g < groups; ++g)
          errors.run([&] { sweep(g * group, std::min(panels, (g + 1) * group)); });
      } else {
        errors.run([&] { sweep(int(int64_t(panels) * t / nt), int(int64_t(panels) * (t + 1) / nt)); });
      }
    }
  }
  errors.rethrow();
}

void matmul_packed_avx2(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  switch (w.dtype) {
    case DType::BF16: return matmul_packed_with<PanelBF16>(x, M, w, bias, y);
    case DType::F32: return matmul_packed_with<PanelF32>(x, M, w, bias, y);
    case DType::F16: return matmul_packed_with<PanelF16>(x, M, w, bias, y);
    case DType::I8: return matmul_packed_with<PanelI8>(x, M, w, bias, y);
    default: NV_KCHECK(false, "quantized weights have no panel layout");
  }
}

// Quantized weights, prompt rows (the table's matmul_prompt): each 16-row panel is decoded once
// to f32 (quant_avx2.cpp's SIMD decoder, then stored column by column) into L2 and every row
// tile of x is swept over it by the FMA tile above, so the decoding is amortized over all M rows
// and x stays f32 (kF32: the decoded weights are ggml's values up to one f32 rounding).
void matmul_quant_gemm_avx2_impl(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  const int N = w.rows, panels = (N + kPanelRows - 1) / kPanelRows;
  const size_t K = size_t(w.cols);
  const RowTiles tiles(M);
  auto* xp = static_cast<float*>(thread_scratch(size_t(M) * K * sizeof(float)));
  RegionErrors errors;
#pragma omp parallel if (2.0 * M * N * K > kMinParallelFlops)
  {
#pragma omp for schedule(static)
    for (int t = 0; t < tiles.count; ++t) interleave_rows(x, K, tiles.start(t), tiles.rows(t), xp);
    // This thread's decoded panel [K][16] (slot 1: the caller's slot 0 holds xp), then its
    // rows decoded row after row, then the decoder's scratch.
    float* panel = nullptr;
    errors.run([&] { panel = static_cast<float*>(thread_scratch((2 * K * kPanelRows + K / 8) * sizeof(float), 1)); });
    float* rows = panel ? panel + K * kPanelRows : nullptr;
    // Panels on demand, each decoded once and swept by all of x (streamed from L2 / L3).
#pragma omp for schedule(dynamic, 1) nowait
    for (int p = 0; p < panels; ++p)
      errors.run([&] {
        if (!panel) return;  // no scratch: the error is rethrown below
        const int n0 = p * kPanelRows, nr = std::min(kPanelRows, N - n0);
        dequantize_rows_avx2(w, n0, n0 + nr, rows + kPanelRows * K, rows);
        for (size_t k = 0; k < K; k += 8)  // 8 columns of rows 0-7, then of rows 8-15
          for (int h = 0; h < 2; ++h) {
            __m256 v[8];
            for (int r = 0; r < 8; ++r)
              v[r] = 8 * h + r < nr ? _mm256_loadu_ps(rows + size_t(8 * h + r) * K + k) : _mm256_setzero_ps();
            transpose8(v);
            for (int c = 0; c < 8; ++c) _mm256_storeu_ps(panel + (k + size_t(c)) * kPanelRows + 8 * h, v[c]);
          }
        const float* b = bias ? bias + n0 : nullptr;
        for (int i = 0; i < tiles.count; ++i) {
          const int m0 = tiles.start(i);
          packed_rows_in_order<PanelF32>(xp + size_t(m0) * K, K, reinterpret_cast<const uint8_t*>(panel), nr, b,
                                         y + size_t(m0) * N + n0, size_t(N), tiles.rows(i));
        }
      });
  }
  errors.rethrow();
}

// Below this many rows of x, converting W into panels costs more than it saves (M = 1 is
// memory-bound; 2..7 rows share each W tile through the dot-product kernel instead).
constexpr int kPanelMinRows = 8;

void matmul_avx2(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  if (is_quantized(w.dtype)) {
    return matmul_quant_avx2(x, M, w, bias, y);  // quant_avx2.cpp
  }
  if (w.layout == Layout::kPanels) return matmul_packed_avx2(x, M, w, bias, y);
  // int8 weights are repacked into panels on SIMD ISAs (preferred_layout); row-major ones
  // (loaded under the scalar ISA, or passed by a caller) take the reference kernel, and so do
  // AVX-512's pair panels (weights loaded before the ISA was switched).
  if (w.dtype == DType::I8 || w.layout == Layout::kPairPanels) return scalar_table().matmul(x, M, w, bias, y);
  if (M >= kPanelMinRows) return matmul_panels(x, M, w, bias, y);
  switch (w.dtype) {
    case DType::BF16: return matmul_with<Avx2Matmul<LoadBF16, true>>(x, M, w, bias, y);
    case DType::F32: return matmul_with<Avx2Matmul<LoadF32, false>>(x, M, w, bias, y);
    case DType::F16: return matmul_with<Avx2Matmul<LoadF16, false>>(x, M, w, bias, y);
    default: break;  // I8 and quantized: handled above
  }
}

// ---- elementwise ---------------------------------------------------------------------------

// e^x for 8 lanes: 2^n * p(r) with x = n ln2 + r, |r| <= ln2 / 2 and a degree-6 polynomial
// (relative error ~2e-7). Inputs are clamped to the finite range, so -inf gives ~1e-38, not NaN.
static inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 split in two parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.3981999507e-3f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

void silu_mul_avx2(const float* gate_up, int rows, int n, float* out) {
#pragma omp parallel for schedule(static) if (double(rows) * n > 1 << 16)
  for (int r = 0; r < rows; ++r) {
    const float* g = gate_up + size_t(r) * 2 * n;
    const float* u = g + n;
    float* o = out + size_t(r) * n;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 gv = _mm256_loadu_ps(g + i);
      const __m256 den = _mm256_add_ps(_mm256_set1_ps(1.f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv)));
      _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(gv, den), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; ++i) o[i] = g[i] / (1.f + expf(-g[i])) * u[i];
  }
}

void rmsnorm_avx2(const float* x, const float* weight, int rows, int n, float eps, float* out) {
#pragma omp parallel for schedule(static) if (double(rows) * n > 1 << 17)
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + size_t(r) * n;
    float* o = out + size_t(r) * n;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256 u = _mm256_loadu_ps(xr + i), v = _mm256_loadu_ps(xr + i + 8);
      a0 = _mm256_fmadd_ps(u, u, a0);
      a1 = _mm256_fmadd_ps(v, v, a1);
    }
    float ss = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; ++i) ss += xr[i] * xr[i];
    const float inv = 1.f / sqrtf(ss / float(n) + eps);
    const __m256 iv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8)
      _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + i), iv),
                                            _mm256_loadu_ps(weight + i)));
    for (; i < n; ++i) o[i] = xr[i] * inv * weight[i];
  }
}

// Rotates the n_heads heads of one token by precomputed cs = (cos[half], sin[half]).
static void rope_token(float* x, int n_heads, int head_dim, const float* cs) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* a = x + size_t(h) * head_dim;
    float* b = a + half;
    int i = 0;
    for (; i + 8 <= half; i += 8) {
      const __m256 c = _mm256_loadu_ps(cs + i), sn = _mm256_loadu_ps(cs + half + i);
      const __m256 av = _mm256_loadu_ps(a + i), bv = _mm256_loadu_ps(b + i);
      _mm256_storeu_ps(a + i, _mm256_fmsub_ps(av, c, _mm256_mul_ps(bv, sn)));
      _mm256_storeu_ps(b + i, _mm256_fmadd_ps(bv, c, _mm256_mul_ps(av, sn)));
    }
    for (; i < half; ++i) {
      const float av = a[i], bv = b[i];
      a[i] = av * cs[i] - bv * cs[half + i];
      b[i] = bv * cs[i] + av * cs[half + i];
    }
  }
}

// 8 floats to bf16 with round-to-nearest-even, NaN kept NaN (bit-identical to f32_to_bf16).
static inline __m128i f32x8_to_bf16(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40)), nan);
  // packus works per 128-bit lane: gather the two low quadwords of the result.
  const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
  return _mm256_castsi256_si128(p);
}

// Rows offs[0, n) of a K or V cache into L1, a little ahead of their use: a head's rows are
// contiguous only within a block and blocks are scattered, which the hardware prefetchers do
// not follow. Attention issues them a few lines at a time between the math: a burst of a whole
// chunk's lines fills the miss buffers and stalls the core until they drain.
static inline void prefetch_rows(const void* base, DType t, const size_t* offs, int n, int hd) {
  const size_t es = dtype_size(t), row = size_t(hd) * es;
  for (int j = 0; j < n; ++j)
    for (size_t b = 0; b < row; b += 64)
      _mm_prefetch(static_cast<const char*>(base) + offs[j] * es + b, _MM_HINT_T0);
}

// n floats to bf16, 8 at a time, bit-identical to f32_to_bf16 (elementwise_driver.inc).
static void store_bf16_row(uint16_t* dst, const float* src, size_t n) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j), f32x8_to_bf16(_mm256_loadu_ps(src + j)));
  for (; j < n; ++j) dst[j] = f32_to_bf16(src[j]);
}

#include "kernels/elementwise_driver.inc"

void rope_avx2(float* x, int n_tokens, int n_heads, int head_dim, const int* positions,
               const float* inv_freq) {
  rope_tokens(x, n_tokens, n_heads, head_dim, positions, inv_freq);
}

void kv_store_avx2(const KVLayer& kv, const float* k, const float* v, int n, const int* slots) {
  kv_store_rows(kv, k, v, n, slots);
}

// ---- attention -----------------------------------------------------------------------------
// Work items are (sequence, range of KV heads, block of up to 16 new tokens). Inside one, the
// query rows that share a KV head (the GQA group, for a tile of up to 4 consecutive tokens) walk
// the context in chunks of 32 positions, the range's heads one after another in each chunk:
// every K and V row is loaded and widened once per pair of query rows, scores get one
// online-softmax update per chunk, and rows of a tile whose causal limit falls inside a chunk
// are masked there.

constexpr int kAttnChunk = 32;       // positions scored before one softmax rescale
constexpr int kAttnTokenBlock = 16;  // new tokens of one sequence per work item
constexpr int kMaxAttnRows = 64;     // query rows per tile: max(group, 8)

// Tokens per tile: enough that a tile has about 8 query rows (4 pairs sharing each K/V row),
// so a prefill widens each row a quarter as often as one token at a time would.
static int attn_tile_tokens(int group) { return group >= 8 ? 1 : 8 / group < 4 ? 8 / group : 4; }

// 16 elements of a KV row as two f32 vectors. A BF16 row is widened from one 256-bit load: the
// shift gives the even-indexed elements, the mask the odd ones, so queries and accumulators
// are kept in that "KV order" (per 16 dims: evens, then odds); F32 rows load as they are.
static inline void load_kv16(const void* base, DType t, size_t off, __m256& a, __m256& b) {
  if (t == DType::F32) {
    a = _mm256_loadu_ps(static_cast<const float*>(base) + off);
    b = _mm256_loadu_ps(static_cast<const float*>(base) + off + 8);
    return;
  }
  widen_bf16x16(static_cast<const uint16_t*>(base) + off, a, b);
}

// A query row (hd a multiple of 16) into KV order, and an accumulator back to natural order.
static void to_kv_order(const float* q, int hd, DType t, float* out) {
  if (t == DType::F32) {
    std::memcpy(out, q, size_t(hd) * sizeof(float));
    return;
  }
  for (int d = 0; d < hd; d += 16)
    for (int i = 0; i < 8; ++i) {
      out[d + i] = q[d + 2 * i];
      out[d + 8 + i] = q[d + 2 * i + 1];
    }
}

static void from_kv_order(const float* acc, int hd, DType t, float scale, float* out) {
  const bool f32 = t == DType::F32;
  for (int d = 0; d < hd; d += 16)
    for (int i = 0; i < 8; ++i) {
      out[d + (f32 ? i : 2 * i)] = acc[d + i] * scale;
      out[d + (f32 ? 8 + i : 2 * i + 1)] = acc[d + 8 + i] * scale;
    }
}

// Softmax state of one query row: running max, running sum, the weighted V sum (KV order),
// the query (KV order) and how many positions it may see.
struct RowState {
  float m, l;
  float* acc;
  const float* q;
  int limit;
};

// Scores of NR query rows (1 or 2) against four K rows: each K row is widened once for all.
template <int NR>
static inline void dot4(const float* const* q, const void* k, DType t, const size_t off[4], int hd,
                        __m128* out, const size_t* pf) {
  if (pf) prefetch_rows(k, t, pf, 4, hd);
  __m256 a[NR][4];
#pragma GCC unroll 2
  for (int r = 0; r < NR; ++r)
    for (int u = 0; u < 4; ++u) a[r][u] = _mm256_setzero_ps();
  for (int d = 0; d < hd; d += 16) {
    __m256 q0[NR], q1[NR];
#pragma GCC unroll 2
    for (int r = 0; r < NR; ++r) {
      q0[r] = _mm256_loadu_ps(q[r] + d);
      q1[r] = _mm256_loadu_ps(q[r] + d + 8);
    }
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      __m256 k0, k1;
      load_kv16(k, t, off[u] + d, k0, k1);
#pragma GCC unroll 2
      for (int r = 0; r < NR; ++r) a[r][u] = _mm256_fmadd_ps(q1[r], k1, _mm256_fmadd_ps(q0[r], k0, a[r][u]));
    }
  }
#pragma GCC unroll 2
  for (int r = 0; r < NR; ++r) {
    const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a[r][0], a[r][1]), _mm256_hadd_ps(a[r][2], a[r][3]));
    out[r] = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  }
}

// NR rows' acc[d0, d0 + 16 NV / 2) = acc * rescale + sum_j p[j] v_j, each V row widened once
// for all rows and the slice of acc held in registers across the chunk.
template <int NR, int NV>
static inline void pv(float* const* acc, const float* rescale, const float* const* p, const void* v,
                      DType t, const size_t* offs, int n, int d0, const size_t* pf) {
  __m256 a[NR][NV];
#pragma GCC unroll 2
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i)
      a[r][i] = _mm256_mul_ps(_mm256_set1_ps(rescale[r]), _mm256_loadu_ps(acc[r] + d0 + 8 * i));
  const size_t es = dtype_size(t);
  for (int j = 0; j < n; ++j) {
    if (pf)  // this slice of the next chunk's row j: one line per row and slice
      for (size_t b = size_t(d0) * es; b < size_t(d0 + 8 * NV) * es; b += 64)
        _mm_prefetch(static_cast<const char*>(v) + pf[j] * es + b, _MM_HINT_T0);
    __m256 vv[NV];
#pragma GCC unroll 4
    for (int i = 0; i < NV; i += 2) load_kv16(v, t, offs[j] + d0 + 8 * i, vv[i], vv[i + 1]);
#pragma GCC unroll 2
    for (int r = 0; r < NR; ++r) {
      const __m256 pj = _mm256_set1_ps(p[r][j]);
#pragma GCC unroll 8
      for (int i = 0; i < NV; ++i) a[r][i] = _mm256_fmadd_ps(pj, vv[i], a[r][i]);
    }
  }
#pragma GCC unroll 2
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) _mm256_storeu_ps(acc[r] + d0 + 8 * i, a[r][i]);
}

// V for rows [r, r + NR) of a chunk: 32-dim slices of acc, 16 at the end.
template <int NR>
static void pv_rows(RowState* rows, int r, const float* rescale, const float* sc, const KVLayer& kv,
                    const size_t* offs, int n, const size_t* pf) {
  float* acc[NR];
  const float* p[NR];
  for (int i = 0; i < NR; ++i) {
    acc[i] = rows[r + i].acc;
    p[i] = sc + (r + i) * kAttnChunk;
  }
  constexpr int kWide = 4;  // vectors per slice (32 dims): 4 NR accumulators
  const int hd = kv.head_dim;
  int d0 = 0;
  for (; d0 + 8 * kWide <= hd; d0 += 8 * kWide) pv<NR, kWide>(acc, rescale + r, p, kv.v, kv.dtype, offs, n, d0, pf);
  for (; d0 < hd; d0 += 16) pv<NR, 2>(acc, rescale + r, p, kv.v, kv.dtype, offs, n, d0, pf);
}


// Turns raw scores s[0, n) of positions [p0, p0 + n) into exp(s - new max), zero past the
// row's limit, and updates the running max and sum; returns the factor that rescales what was
// accumulated before this chunk.
static float softmax_chunk(float* s, int p0, int n, RowState& st) {
  const int vis = st.limit - p0;  // a row of a tile may end before (or inside) the chunk
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  // Vectors of 8 over the row's 32-float buffer; lanes past vis are masked, not read as scores.
  __m256 mv = ninf;
  for (int j = 0; j < n && j < vis; j += 8) {
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(vis - j), lane));
    mv = _mm256_max_ps(mv, _mm256_blendv_ps(ninf, _mm256_loadu_ps(s + j), keep));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float mx = st.m > _mm_cvtss_f32(m4) ? st.m : _mm_cvtss_f32(m4);
  const float rescale = expf(st.m - mx);  // 0 on the first chunk (m = -inf)
  __m256 sum = _mm256_setzero_ps();
  for (int j = 0; j < n; j += 8) {
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(vis - j), lane));
    const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(mx))), keep);
    _mm256_storeu_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  st.l = st.l * rescale + hsum(sum);
  st.m = mx;
  return rescale;
}

// The first min(4, left) of four scores.
static inline void store_scores(float* dst, __m128 r, int left) {
  alignas(16) float t[4];
  _mm_store_ps(t, r);
  for (int u = 0; u < 4 && u < left; ++u) dst[u] = t[u];
}

// Element offsets of the K/V rows of positions [p0, p0 + n) of one KV head: one block lookup
// per run of positions inside a block (a division per position cost more than the math).
static void chunk_offsets(const KVLayer& kv, const int* table, int kv_head, int p0, int n, size_t* offs) {
  const int bs = kv.block_size;
  for (int j = 0, p = p0; j < n;) {
    const int in = p % bs, run = bs - in < n - j ? bs - in : n - j;
    const size_t first = kv_offset(kv, size_t(table[p / bs]) * bs + size_t(in), kv_head);
    for (int i = 0; i < run; ++i) offs[j + i] = first + size_t(i) * kv.head_dim;
    j += run;
    p += run;
  }
}

// Offsets of the next chunk of positions [p0, min(p0 + kAttnChunk, ctx)), padded with the
// last to kAttnChunk + 3 (the groups of four read past the end); returns its length.
static int chunk_rows(const KVLayer& kv, const int* table, int kv_head, int p0, int ctx, size_t* offs) {
  const int n = ctx - p0 < kAttnChunk ? ctx - p0 : kAttnChunk;
  if (n <= 0) return 0;
  chunk_offsets(kv, table, kv_head, p0, n, offs);
  for (int j = n; j < kAttnChunk + 3; ++j) offs[j] = offs[n - 1];
  return n;
}

// One chunk of positions [p0, p0 + n) for R query rows of one KV head (head_dim a multiple of
// 16, rows in KV order): scores first, then one softmax update per row, then V; rows in pairs.
// offs: the chunk's row offsets; next: the next chunk's (both from chunk_rows), or null at
// the end: the first pair of rows prefetches it while it computes this one.
static void attend_chunk(RowState* rows, int R, const KVLayer& kv, const size_t* offs, const size_t* next,
                         int p0, int n, float scale, float* sc) {
  const int hd = kv.head_dim;
  const __m128 sv = _mm_set1_ps(scale);
  for (int r = 0; r < R; r += 2) {
    const float* q[2] = {rows[r].q, r + 1 < R ? rows[r + 1].q : nullptr};
    const size_t* pf = r == 0 ? next : nullptr;  // the first pair streams the next chunk's K in
    for (int j = 0; j < n; j += 4) {
      __m128 s[2];
      const size_t* pfj = pf ? pf + j : nullptr;
      if (r + 1 < R) dot4<2>(q, kv.k, kv.dtype, offs + j, hd, s, pfj);
      else dot4<1>(q, kv.k, kv.dtype, offs + j, hd, s, pfj);
      for (int i = 0; i < 2 && r + i < R; ++i) store_scores(sc + (r + i) * kAttnChunk + j, _mm_mul_ps(s[i], sv), n - j);
    }
  }
  float rescale[kMaxAttnRows];
  for (int r = 0; r < R; ++r) rescale[r] = softmax_chunk(sc + r * kAttnChunk, p0, n, rows[r]);
  int r = 0;
  for (; r + 2 <= R; r += 2) pv_rows<2>(rows, r, rescale, sc, kv, offs, n, r == 0 ? next : nullptr);
  if (r < R) pv_rows<1>(rows, r, rescale, sc, kv, offs, n, r == 0 ? next : nullptr);
}

static inline float dot_kv(const float* q, const void* k, DType t, size_t off, int hd) {
  float s = 0.f;
  for (int d = 0; d < hd; ++d) s += q[d] * load_as_f32(k, t, off + d);
  return s;
}

// The same for any even head_dim (rows in natural order), one position and row at a time.
static void attend_chunk_any(RowState* rows, int R, const KVLayer& kv, const int* table, int kv_head,
                             int p0, int n, float scale, float* sc) {
  const int hd = kv.head_dim;
  size_t offs[kAttnChunk];
  chunk_offsets(kv, table, kv_head, p0, n, offs);
  for (int j = 0; j < n; ++j)
    for (int r = 0; r < R; ++r) sc[r * kAttnChunk + j] = dot_kv(rows[r].q, kv.k, kv.dtype, offs[j], hd) * scale;
  for (int r = 0; r < R; ++r) {
    const float rescale = softmax_chunk(sc + r * kAttnChunk, p0, n, rows[r]);
    for (int d = 0; d < hd; ++d) rows[r].acc[d] *= rescale;
  }
  for (int j = 0; j < n; ++j)
    for (int r = 0; r < R; ++r) {
      const float p = sc[r * kAttnChunk + j];
      for (int d = 0; d < hd; ++d) rows[r].acc[d] += p * load_as_f32(kv.v, kv.dtype, offs[j] + d);
    }
}

// The rows of the next KV head for the same positions as offs: one head's run further on in
// each block (kv_offset: a block is [n_kv_heads, block_size, head_dim]).
static void next_head_rows(const KVLayer& kv, const size_t* offs, size_t* out) {
  const size_t run = size_t(kv.block_size) * size_t(kv.head_dim);
  for (int j = 0; j < kAttnChunk + 3; ++j) out[j] = offs[j] + run;
}

// Tokens [t0, t1) of one sequence for the query heads of KV heads [kv0, kv1), in tiles of tq
// tokens whose group x tq rows per KV head share every K/V load. The heads walk the context
// together, chunk by chunk, so each block's K (and V) is read as one run of (kv1 - kv0) x 4 KiB
// (bf16, 16 x 128; a chunk's two blocks give two such streams) that the hardware prefetchers
// follow, instead of 4 KiB pieces of blocks scattered over the cache. work: kMaxAttnRows x
// (kAttnChunk + 2 hd) floats; every tile has at most kMaxAttnRows rows over its heads
// (attn_heads_per_item).
static void attend_tokens(const float* q, const AttnSeq& sq, int t0, int t1, int n_heads, int group,
                          int kv0, int kv1, const KVLayer& kv, float scale, float* work, float* out) {
  const int hd = kv.head_dim, tq = attn_tile_tokens(group), nh = kv1 - kv0;
  const bool kv_order = hd % 16 == 0;
  float* sc = work;
  float* accs = sc + size_t(kMaxAttnRows) * kAttnChunk;
  float* qk = accs + size_t(kMaxAttnRows) * hd;
  RowState rows[kMaxAttnRows];
  for (int ts = t0; ts < t1; ts += tq) {
    const int te = ts + tq < t1 ? ts + tq : t1, R = (te - ts) * group;  // rows per KV head
    // Row r of KV head kv0 + h: token ts + r / group, query head (kv0 + h) * group + r % group;
    // where it sits in q and out.
    auto at = [&](int h, int r) {
      return (size_t(sq.q_offset + ts + r / group) * n_heads + size_t((kv0 + h) * group + r % group)) * hd;
    };
    for (int h = 0; h < nh; ++h)
      for (int r = 0; r < R; ++r) {
        const int i = h * R + r;
        const float* qr = q + at(h, r);
        float* qo = qk + size_t(i) * hd;
        if (kv_order) to_kv_order(qr, hd, kv.dtype, qo);
        else std::memcpy(qo, qr, size_t(hd) * sizeof(float));
        rows[i] = RowState{-INFINITY, 0.f, accs + size_t(i) * hd, qo, sq.num_cached + ts + r / group + 1};
        std::memset(rows[i].acc, 0, size_t(hd) * sizeof(float));
      }
    const int ctx = sq.num_cached + te;  // the last token's limit
    if (!kv_order) {
      for (int h = 0; h < nh; ++h)
        for (int p0 = 0; p0 < ctx; p0 += kAttnChunk)
          attend_chunk_any(rows + h * R, R, kv, sq.block_table, kv0 + h, p0,
                           ctx - p0 < kAttnChunk ? ctx - p0 : kAttnChunk, scale, sc);
    } else {
      // offs: head kv0's rows of this chunk and the next; heads: the rows of heads kv0 + h
      // and kv0 + h + 1 of this chunk. Each head call prefetches what the next one reads.
      size_t offs[2][kAttnChunk + 3], heads[2][kAttnChunk + 3];
      int n = chunk_rows(kv, sq.block_table, kv0, 0, ctx, offs[0]);
      for (int p0 = 0, c = 0; n > 0; c ^= 1) {
        const int n_next = chunk_rows(kv, sq.block_table, kv0, p0 + n, ctx, offs[c ^ 1]);
        const size_t* cur = offs[c];
        for (int h = 0; h < nh; ++h) {
          const size_t* next = n_next ? offs[c ^ 1] : nullptr;
          if (h + 1 < nh) {
            next_head_rows(kv, cur, heads[h & 1]);
            next = heads[h & 1];
          }
          attend_chunk(rows + h * R, R, kv, cur, next, p0, n, scale, sc);
          cur = next;
        }
        p0 += n;
        n = n_next;
      }
    }
    for (int h = 0; h < nh; ++h)
      for (int r = 0; r < R; ++r) {
        const RowState& st = rows[h * R + r];
        float* o = out + at(h, r);
        const float inv = 1.f / st.l;
        if (kv_order) from_kv_order(st.acc, hd, kv.dtype, inv, o);
        else
          for (int d = 0; d < hd; ++d) o[d] = st.acc[d] * inv;
      }
  }
}

// KV heads per work item of a sequence whose new tokens fit one tile (decode): as many as keep
// the tile's rows within kMaxAttnRows and leave at least kAttnItemsPerThread items per thread,
// in ranges of near-equal size. Longer runs read from memory faster than more items balance
// (batch 4 x 256 positions from DRAM: 2 items per thread 0.28-0.33 ms, 8 items 0.37). A
// sequence with more tokens keeps one head per item: its tiles re-read that head's context
// from L2.
constexpr int kAttnItemsPerThread = 2;
static int attn_heads_per_item(int kvh, int group, int head_items, int threads) {
  const int rows = attn_tile_tokens(group) * group;
  int per = 1;
  while (per < kvh && (per + 1) * rows <= kMaxAttnRows &&
         head_items / (per + 1) >= kAttnItemsPerThread * threads)
    ++per;
  const int ranges = (kvh + per - 1) / per;
  return (kvh + ranges - 1) / ranges;
}

// Work items are (sequence, range of KV heads, block of new tokens): decode batches give many
// items, a long prefill is split by tokens; later (longer) blocks go first under dynamic
// scheduling.
void paged_attention_avx2(const float* q, const AttnSeq* seqs, int n_seqs, int n_heads,
                          const KVLayer& kv, float scale, float* out) {
  const int kvh = kv.n_kv_heads, group = n_heads / kvh, tq = attn_tile_tokens(group);
  NV_KCHECK(group <= kMaxAttnRows, "paged_attention: more than 64 query heads per KV head");
  auto token_blocks = [](const AttnSeq& sq) { return (sq.n_new + kAttnTokenBlock - 1) / kAttnTokenBlock; };
  int head_items = 0;
  double flops = 0;
  for (int s = 0; s < n_seqs; ++s) {
    head_items += kvh * token_blocks(seqs[s]);
    flops += 4.0 * n_heads * kv.head_dim * seqs[s].n_new * (seqs[s].num_cached + seqs[s].n_new);
  }
  const bool parallel = flops > kMinParallelFlops;
  const int decode_per = attn_heads_per_item(kvh, group, head_items, parallel ? omp_get_max_threads() : 1);
  auto heads_per_item = [&](const AttnSeq& sq) { return sq.n_new <= tq ? decode_per : 1; };
  int* first = static_cast<int*>(std::malloc(sizeof(int) * size_t(n_seqs + 1)));  // each sequence's first item
  NV_KCHECK(first != nullptr, "paged_attention: out of memory for the work list");
  first[0] = 0;
  for (int s = 0; s < n_seqs; ++s) {
    const int per = heads_per_item(seqs[s]);
    first[s + 1] = first[s] + (kvh + per - 1) / per * token_blocks(seqs[s]);
  }
  const int items = first[n_seqs];
  RegionErrors errors;
#pragma omp parallel if (parallel)
  {
    float* work = nullptr;
    errors.run([&] {
      work = static_cast<float*>(
          thread_scratch(sizeof(float) * size_t(kMaxAttnRows) * (kAttnChunk + 2 * size_t(kv.head_dim))));
    });
#pragma omp for schedule(dynamic)
    for (int it = 0; it < items; ++it) {
      if (!work) continue;  // no work buffer: the error is rethrown below
      int s = 0;
      while (first[s + 1] <= it) ++s;
      const int local = it - first[s], blocks = token_blocks(seqs[s]), per = heads_per_item(seqs[s]);
      const int kv0 = local / blocks * per, kv1 = kv0 + per < kvh ? kv0 + per : kvh;
      const int b = blocks - 1 - local % blocks;
      const int t0 = b * kAttnTokenBlock, t1 = t0 + kAttnTokenBlock < seqs[s].n_new ? t0 + kAttnTokenBlock : seqs[s].n_new;
      attend_tokens(q, seqs[s], t0, t1, n_heads, group, kv0, kv1, kv, scale, work, out);
    }
  }
  std::free(first);
  errors.rethrow();
}

}  // namespace

void matmul_quant_gemm_avx2(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  matmul_quant_gemm_avx2_impl(x, M, w, bias, y);
}

// Prompt rows: quantized weights through the f32 GEMM, every other dtype as decode rows.
static void matmul_prompt_avx2(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  if (is_quantized(w.dtype)) return matmul_quant_gemm_avx2_impl(x, M, w, bias, y);
  matmul_avx2(x, M, w, bias, y);
}

const KernelTable& avx2_table() {
  static const KernelTable t = [] {
    KernelTable k = scalar_table();
    k.name = "avx2";
    // Every element dtype in 16-row panels, widened to f32 and multiplied by FMA: activations
    // stay f32. Quantized dtypes stay as the file stores them, with x rounded to int8 (kQ8).
    const bool prompt_gemm = quant_prompt_gemm();  // the environment read once, warned once
    for (int t = 0; t < kNumDTypes; ++t) {
      const bool q = is_quantized(DType(t));
      k.layout[t] = q ? Layout::kRows : Layout::kPanels;
      k.precision[t] = q ? Precision::kQ8 : Precision::kF32;
      // Quantized prompt rows: panels decoded to f32 and FMA, x in f32. It ties with the integer
      // dot products at 16 rows on Zen 5 and wins from 32 (1.2-1.8x at 64, 2x at 512;
      // bench/NOTES.md).
      k.prompt_precision[t] = q && prompt_gemm ? Precision::kF32 : k.precision[t];
    }
    k.matmul = matmul_avx2;
    k.matmul_prompt = prompt_gemm ? matmul_prompt_avx2 : matmul_avx2;
    k.rmsnorm = rmsnorm_avx2;
    k.rope = rope_avx2;
    k.silu_mul = silu_mul_avx2;
    k.paged_attention = paged_attention_avx2;
    k.kv_store = kv_store_avx2;
    return k;
  }();
  return t;
}

}  // namespace nanovllm::kernels
