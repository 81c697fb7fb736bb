// AVX-512 attention, in f32 over a bf16 or f32 KV cache. Prefill (many new tokens per sequence,
// compute-bound): two register-tiled outer products per chunk of positions. Decode (a few new
// tokens, bound by reading the cache): dot products of each K row with the few query rows, then
// the same P·V tile; its items walk the context of several KV heads together, as AVX2's do.
#include <immintrin.h>
#include <math.h>  // C expf: see kernels_avx2.cpp
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>
#include <vector>

#include "kernels/kernels_internal.h"

// GCC 12's own AVX-512 headers (unpack, reduce) trip these warnings on their placeholder operands.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace nanovllm::kernels {
namespace {

#include "kernels/scratch.inc"

// A work item is (sequence, KV head, block of new tokens); its rows are the block's tokens x
// the query heads of that KV head (the GQA group), all sharing every K and V element loaded.
// Per chunk of 32 positions:
//   1. K's 32 rows are widened and transposed once into Kt[d][32] (16 x 16 in-register transposes);
//   2. scores S[rows][32] = Q Kt: an MR x 32 tile broadcasts q[r][d] and does 2 MR FMAs per d;
//   3. an online-softmax update per row (running max, sum, rescale of what was accumulated);
//   4. acc[rows][hd] = acc * rescale + P V: an MR x 64 tile broadcasts p[r][j] against one
//      widened V row slice, 4 MR FMAs per position.
// BF16 rows are widened 32 at a time by a shift (even elements) and a mask (odd ones), so
// within each 32 dims Kt, Q and acc use that "KV order" (16 evens, then 16 odds); F32 rows are
// natural order. A dot product does not care about the order, and the output is put back.
constexpr int kChunk = 32;
constexpr int kMaxItemRows = 128;  // tokens per item x group
constexpr int kMaxItemTokens = 16;
constexpr int kMR = 6;             // query rows per register tile
// Sequences with fewer new tokens than this go to the decode kernel.
constexpr int kMinPrefillTokens = 4;

#include "kernels/exp_avx512.inc"

// 32 elements of a KV row as two f32 vectors in KV order (see above).
static inline void load_kv32(const void* base, DType t, size_t off, __m512& a, __m512& b) {
  if (t == DType::F32) {
    a = _mm512_loadu_ps(static_cast<const float*>(base) + off);
    b = _mm512_loadu_ps(static_cast<const float*>(base) + off + 16);
    return;
  }
  const __m512i v = _mm512_loadu_si512(static_cast<const uint16_t*>(base) + off);
  a = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  b = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
}

// The natural dim of position i of a 32-dim group in KV order.
static inline int natural_dim(DType t, int i) { return t == DType::F32 ? i : i < 16 ? 2 * i : 2 * (i - 16) + 1; }

#include "kernels/transpose_avx512.inc"

// Kt[d][j] = K row j, dim d (KV order), for the 32 rows at offs (a chunk padded with its last row).
static void transpose_chunk(const KVLayer& kv, const size_t* offs, float* kt) {
  const int hd = kv.head_dim;
  for (int d0 = 0; d0 < hd; d0 += 32)
    for (int j0 = 0; j0 < kChunk; j0 += 16) {
      __m512 lo[16], hi[16];
      for (int j = 0; j < 16; ++j) load_kv32(kv.k, kv.dtype, offs[j0 + j] + size_t(d0), lo[j], hi[j]);
      transpose16(lo);
      transpose16(hi);
      for (int i = 0; i < 16; ++i) {
        _mm512_storeu_ps(kt + size_t(d0 + i) * kChunk + j0, lo[i]);
        _mm512_storeu_ps(kt + size_t(d0 + 16 + i) * kChunk + j0, hi[i]);
      }
    }
}

// s[r][0, 32) = scale * q_r . Kt for MR rows; qt is [hd][R] (the item's rows interleaved, so
// the broadcasts read one stream).
template <int MR>
static void score_tile(const float* qt, int R, int hd, const float* kt, float scale, float* s) {
  __m512 a[MR][2];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i][0] = a[i][1] = _mm512_setzero_ps();
  for (int d = 0; d < hd; ++d) {
    const __m512 k0 = _mm512_loadu_ps(kt + size_t(d) * kChunk), k1 = _mm512_loadu_ps(kt + size_t(d) * kChunk + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 q = _mm512_set1_ps(qt[size_t(d) * R + i]);
      a[i][0] = _mm512_fmadd_ps(q, k0, a[i][0]);
      a[i][1] = _mm512_fmadd_ps(q, k1, a[i][1]);
    }
  }
  const __m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(s + i * kChunk, _mm512_mul_ps(a[i][0], sv));
    _mm512_storeu_ps(s + i * kChunk + 16, _mm512_mul_ps(a[i][1], sv));
  }
}

// acc[r][d0, d0 + 16 NV) = acc * rescale[r] + sum_j p[r][j] V_j for MR rows, each V row slice
// loaded and widened once for all of them.
// pf: rows to prefetch (this slice of each), or null (decode: the next head's V, bench/NOTES.md).
template <int MR, int NV>
static void pv_tile(const KVLayer& kv, const size_t* offs, int d0, const float* p, const float* rescale,
                    float* acc, int hd, int n = kChunk, const size_t* pf = nullptr) {
  const size_t es = dtype_size(kv.dtype);
  __m512 a[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      a[i][v] = _mm512_mul_ps(_mm512_set1_ps(rescale[i]), _mm512_loadu_ps(acc + size_t(i) * hd + d0 + 16 * v));
  for (int j = 0; j < n; ++j) {  // positions past n have p = 0 (softmax32): skipping them is exact
    if (pf)
      for (size_t b = size_t(d0) * es; b < size_t(d0 + 16 * NV) * es; b += 64)
        _mm_prefetch(static_cast<const char*>(kv.v) + pf[j] * es + b, _MM_HINT_T0);
    __m512 vv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v += 2) load_kv32(kv.v, kv.dtype, offs[j] + size_t(d0 + 16 * v), vv[v], vv[v + 1]);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 pj = _mm512_set1_ps(p[i * kChunk + j]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) a[i][v] = _mm512_fmadd_ps(pj, vv[v], a[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + size_t(i) * hd + d0 + 16 * v, a[i][v]);
}

// Softmax state of one row: running max and sum, and how many positions it sees.
struct Row {
  float m, l;
  int limit;
};

// Scores s[0, 32) of positions [p0, p0 + 32) to exp(s - new max), 0 from the row's limit on;
// updates the row's max and sum and returns the factor for what was accumulated before.
static float softmax32(float* s, int p0, Row& row) {
  const int vis = std::clamp(row.limit - p0, 0, kChunk);
  const __mmask16 k0 = __mmask16(vis >= 16 ? 0xffff : (1u << vis) - 1);
  const __mmask16 k1 = __mmask16(vis <= 16 ? 0 : vis >= 32 ? 0xffff : (1u << (vis - 16)) - 1);
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  const __m512 s0 = _mm512_mask_loadu_ps(ninf, k0, s), s1 = _mm512_mask_loadu_ps(ninf, k1, s + 16);
  const float cmax = _mm512_reduce_max_ps(_mm512_max_ps(s0, s1));
  const float mx = row.m > cmax ? row.m : cmax;
  if (mx == -INFINITY) {  // nothing visible yet (cannot happen for position 0): keep the state
    _mm512_storeu_ps(s, _mm512_setzero_ps());
    _mm512_storeu_ps(s + 16, _mm512_setzero_ps());
    return 1.f;
  }
  const __m512 mv = _mm512_set1_ps(mx);
  const __m512 e0 = _mm512_maskz_mov_ps(k0, exp512(_mm512_sub_ps(s0, mv)));
  const __m512 e1 = _mm512_maskz_mov_ps(k1, exp512(_mm512_sub_ps(s1, mv)));
  _mm512_storeu_ps(s, e0);
  _mm512_storeu_ps(s + 16, e1);
  const float rescale = expf(row.m - mx);  // 0 on the first chunk (m = -inf)
  row.l = row.l * rescale + _mm512_reduce_add_ps(_mm512_add_ps(e0, e1));
  row.m = mx;
  return rescale;
}

// Element offsets of the K/V rows of positions [p0, p0 + 32) of one KV head, positions past
// ctx repeating the last one (their scores are masked: every row's limit is <= ctx).
static void chunk_offsets32(const KVLayer& kv, const int* table, int kv_head, int p0, int ctx, size_t* offs) {
  const int bs = kv.block_size, n = std::min(kChunk, ctx - p0);
  for (int j = 0, p = p0; j < n;) {
    const int in = p % bs, run = std::min(bs - in, n - j);
    const size_t first = kv_offset(kv, size_t(table[p / bs]) * bs + size_t(in), kv_head);
    for (int i = 0; i < run; ++i) offs[j + i] = first + size_t(i) * size_t(kv.head_dim);
    j += run;
    p += run;
  }
  for (int j = n; j < kChunk; ++j) offs[j] = offs[n - 1];
}

template <class F>
static void for_row_tiles(int R, F&& f) {
  const int count = (R + kMR - 1) / kMR, base = R / count, extra = R % count;
  for (int t = 0, r = 0; t < count; ++t) {
    const int mr = base + (t < extra ? 1 : 0);
    f(r, mr);
    r += mr;
  }
}

template <class F>
static void with_mr(int mr, F&& f) {
  switch (mr) {
    case 6: return f(std::integral_constant<int, 6>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return f(std::integral_constant<int, 1>{});
  }
}

// Per-thread buffers of one item, carved from one scratch allocation.
struct ItemBuffers {
  float *qt, *kt, *s, *acc;
  static size_t floats(int hd) { return size_t(hd) * (2 * kMaxItemRows + kChunk) + size_t(kMaxItemRows) * kChunk; }
  ItemBuffers(float* base, int hd)
      : qt(base), kt(qt + size_t(hd) * kMaxItemRows), s(kt + size_t(hd) * kChunk), acc(s + size_t(kMaxItemRows) * kChunk) {}
};

// Tokens [t0, t1) of sequence sq against KV head h: rows r = (t - t0) * group + g.
static void attend_item(const float* q, const AttnSeq& sq, int t0, int t1, int n_heads, int group, int h,
                        const KVLayer& kv, float scale, const ItemBuffers& b, float* out) {
  const int hd = kv.head_dim, R = (t1 - t0) * group;
  auto row_at = [&](int r) {  // where row r sits in q and out
    return (size_t(sq.q_offset + t0 + r / group) * n_heads + size_t(h * group + r % group)) * hd;
  };
  Row rows[kMaxItemRows];
  for (int r = 0; r < R; ++r) {
    const float* qr = q + row_at(r);
    for (int d = 0; d < hd; ++d) b.qt[size_t(d) * R + r] = qr[(d & ~31) + natural_dim(kv.dtype, d & 31)];
    rows[r] = Row{-INFINITY, 0.f, sq.num_cached + t0 + r / group + 1};
  }
  std::fill(b.acc, b.acc + size_t(R) * hd, 0.f);
  const int ctx = sq.num_cached + t1;
  size_t offs[kChunk];
  float rescale[kMaxItemRows];
  for (int p0 = 0; p0 < ctx; p0 += kChunk) {
    chunk_offsets32(kv, sq.block_table, h, p0, ctx, offs);
    transpose_chunk(kv, offs, b.kt);
    for_row_tiles(R, [&](int r0, int mr) {
      with_mr(mr, [&](auto MR) { score_tile<decltype(MR)::value>(b.qt + r0, R, hd, b.kt, scale, b.s + size_t(r0) * kChunk); });
    });
    for (int r = 0; r < R; ++r) rescale[r] = softmax32(b.s + size_t(r) * kChunk, p0, rows[r]);
    for_row_tiles(R, [&](int r0, int mr) {
      with_mr(mr, [&](auto MR) {
        const float* p = b.s + size_t(r0) * kChunk;
        float* acc = b.acc + size_t(r0) * hd;
        int d0 = 0;
        for (; d0 + 64 <= hd; d0 += 64) pv_tile<decltype(MR)::value, 4>(kv, offs, d0, p, rescale + r0, acc, hd);
        if (d0 < hd) pv_tile<decltype(MR)::value, 2>(kv, offs, d0, p, rescale + r0, acc, hd);
      });
    });
  }
  for (int r = 0; r < R; ++r) {
    float* o = out + row_at(r);
    const float inv = 1.f / rows[r].l;
    const float* a = b.acc + size_t(r) * hd;
    for (int d = 0; d < hd; ++d) o[(d & ~31) + natural_dim(kv.dtype, d & 31)] = a[d] * inv;
  }
}

// The prefill sequences (n_new >= kMinPrefillTokens), items (sequence, KV head, token block),
// later blocks (longer contexts) first under dynamic scheduling.
void prefill_attention(const float* q, const std::vector<AttnSeq>& seqs, int n_heads, const KVLayer& kv,
                       float scale, float* out) {
  const int kvh = kv.n_kv_heads, group = n_heads / kvh;
  const int tokens = std::max(1, std::min(kMaxItemTokens, kMaxItemRows / group));
  struct Item { int s, h, t0, t1; };
  std::vector<Item> items;
  for (int s = 0; s < int(seqs.size()); ++s)
    for (int t0 = (seqs[s].n_new - 1) / tokens * tokens; t0 >= 0; t0 -= tokens)
      for (int h = 0; h < kvh; ++h) items.push_back({s, h, t0, std::min(t0 + tokens, seqs[s].n_new)});
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
    return seqs[a.s].num_cached + a.t1 > seqs[b.s].num_cached + b.t1;
  });
  double flops = 0;
  for (const AttnSeq& sq : seqs) flops += 4.0 * n_heads * kv.head_dim * sq.n_new * (sq.num_cached + sq.n_new);
  RegionErrors errors;
#pragma omp parallel if (flops > kMinParallelFlops)
  {
    float* buf = nullptr;
    errors.run([&] { buf = static_cast<float*>(thread_scratch(ItemBuffers::floats(kv.head_dim) * sizeof(float))); });
#pragma omp for schedule(dynamic)
    for (int i = 0; i < int(items.size()); ++i) {
      if (!buf) continue;  // no buffer: the error is rethrown below
      const Item& it = items[size_t(i)];
      attend_item(q, seqs[size_t(it.s)], it.t0, it.t1, n_heads, group, it.h, kv, scale, ItemBuffers(buf, kv.head_dim), out);
    }
  }
  errors.rethrow();
}

// ---- decode ----------------------------------------------------------------------------------
// A sequence with few new tokens has R = n_new x group query rows per KV head (2 for Qwen3's
// decode): too few to pay for transposing K. Its scores are dot products: 8 positions x 2 rows
// = 16 zmm accumulators over the head dim, each widened K slice used by both rows, then one
// transpose-and-add reduction per 8 positions. P·V is the prefill's tile. A work item is
// (sequence, range of KV heads) and the heads of a range walk the context together, chunk by
// chunk: a block's K (and V) rows of all the range's heads are one contiguous run
// ([block, head, slot, dim]) that the hardware prefetchers follow.

// lane j of the result = the sum of the 16 lanes of a[j] (j < 8).
static inline __m256 reduce8(const __m512 a[8]) {
  __m512 b[4];
  for (int i = 0; i < 4; ++i)  // per 128-bit lane: (x0 + x2, y0 + y2, x1 + x3, y1 + y3)
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  __m512 c[2];
  for (int i = 0; i < 2; ++i)  // per 128-bit lane: the lane's sums of a[4 i .. 4 i + 3]
    c[i] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0x44), _mm512_shuffle_ps(b[2 * i], b[2 * i + 1], 0xEE));
  // 128-bit lanes: (c0.0 + c0.2, c0.1 + c0.3, c1.0 + c1.2, c1.1 + c1.3)
  const __m512 e = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x44), _mm512_shuffle_f32x4(c[0], c[1], 0xEE));
  // low 256 bits: (e.0 + e.1, e.2 + e.3)
  const __m512 f = _mm512_add_ps(_mm512_shuffle_f32x4(e, e, 0x08), _mm512_shuffle_f32x4(e, e, 0x0D));
  return _mm512_castps512_ps256(f);
}

// s[r][j] = scale * q_r . K_j for NR rows (q in KV order, rows hd apart) and positions
// [0, n) of the chunk, rounded up to 8 (the padded offsets repeat a real row; softmax32 masks).
// pf: the rows whose K lines to prefetch meanwhile (the next head's), or null.
template <int NR>
static void dot_scores(const float* q, int hd, const KVLayer& kv, const size_t* offs, int n, float scale, float* s,
                       const size_t* pf) {
  const __m256 sv = _mm256_set1_ps(scale);
  const size_t es = dtype_size(kv.dtype);
  for (int j0 = 0; j0 < n; j0 += 8) {
    __m512 a[NR][8];
#pragma GCC unroll 2
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
      for (int u = 0; u < 8; ++u) a[r][u] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d += 32) {
      __m512 q0[NR], q1[NR];
#pragma GCC unroll 2
      for (int r = 0; r < NR; ++r) {
        q0[r] = _mm512_loadu_ps(q + size_t(r) * hd + d);
        q1[r] = _mm512_loadu_ps(q + size_t(r) * hd + d + 16);
      }
#pragma GCC unroll 8
      for (int u = 0; u < 8; ++u) {
        if (pf)  // the 32 dims at d of the next row j0 + u: one line (bf16) or two (f32)
          for (size_t b = 0; b < 32 * es; b += 64)
            _mm_prefetch(static_cast<const char*>(kv.k) + (pf[j0 + u] + size_t(d)) * es + b, _MM_HINT_T0);
        __m512 k0, k1;
        load_kv32(kv.k, kv.dtype, offs[j0 + u] + size_t(d), k0, k1);
#pragma GCC unroll 2
        for (int r = 0; r < NR; ++r) a[r][u] = _mm512_fmadd_ps(q1[r], k1, _mm512_fmadd_ps(q0[r], k0, a[r][u]));
      }
    }
#pragma GCC unroll 2
    for (int r = 0; r < NR; ++r) _mm256_storeu_ps(s + size_t(r) * kChunk + j0, _mm256_mul_ps(reduce8(a[r]), sv));
  }
}

// The new tokens of sequence sq for the query heads of KV heads [kv0, kv1); R = n_new x group
// rows per head, (kv1 - kv0) x R <= kMaxItemRows.
static void attend_decode(const float* q, const AttnSeq& sq, int n_heads, int group, int kv0, int kv1,
                          const KVLayer& kv, float scale, const ItemBuffers& b, float* out) {
  const int hd = kv.head_dim, nh = kv1 - kv0, R = sq.n_new * group;
  auto row_at = [&](int h, int r) {  // where row r of head kv0 + h sits in q and out
    return (size_t(sq.q_offset + r / group) * n_heads + size_t((kv0 + h) * group + r % group)) * hd;
  };
  Row rows[kMaxItemRows];
  for (int h = 0; h < nh; ++h)
    for (int r = 0; r < R; ++r) {
      const float* qr = q + row_at(h, r);
      float* qo = b.qt + size_t(h * R + r) * hd;
      for (int d = 0; d < hd; ++d) qo[d] = qr[(d & ~31) + natural_dim(kv.dtype, d & 31)];
      rows[h * R + r] = Row{-INFINITY, 0.f, sq.num_cached + r / group + 1};
    }
  std::fill(b.acc, b.acc + size_t(nh) * R * hd, 0.f);
  const int ctx = sq.num_cached + sq.n_new;
  // offs[c]: this head's rows of the chunk; offs[c ^ 1]: what the next head call reads (the next
  // head's rows, a block's run further on, or the next chunk's first head), prefetched by this
  // call while it computes: a head's rows are a few 4 KiB runs scattered over the cache, which
  // the hardware prefetchers reach too late (AVX2's decode kernel does the same).
  size_t offs[2][kChunk];
  int c = 0;
  chunk_offsets32(kv, sq.block_table, kv0, 0, ctx, offs[0]);
  float rescale[kMaxItemRows];
  const size_t head_run = size_t(kv.block_size) * size_t(hd);
  for (int p0 = 0; p0 < ctx; p0 += kChunk) {
    const int n = std::min(kChunk, ctx - p0);
    for (int h = 0; h < nh; ++h, c ^= 1) {
      const size_t* cur = offs[c];
      size_t* next = offs[c ^ 1];
      const size_t* pf = next;
      if (h + 1 < nh) {
        for (int j = 0; j < kChunk; ++j) next[j] = cur[j] + head_run;
      } else if (p0 + kChunk < ctx) {
        chunk_offsets32(kv, sq.block_table, kv0, p0 + kChunk, ctx, next);
      } else {
        pf = nullptr;
      }
      const float* qh = b.qt + size_t(h) * R * hd;
      int r = 0;
      for (; r + 2 <= R; r += 2)
        dot_scores<2>(qh + size_t(r) * hd, hd, kv, cur, n, scale, b.s + size_t(r) * kChunk, r == 0 ? pf : nullptr);
      if (r < R) dot_scores<1>(qh + size_t(r) * hd, hd, kv, cur, n, scale, b.s + size_t(r) * kChunk, r == 0 ? pf : nullptr);
      for (r = 0; r < R; ++r) rescale[r] = softmax32(b.s + size_t(r) * kChunk, p0, rows[h * R + r]);
      for_row_tiles(R, [&](int r0, int mr) {
        with_mr(mr, [&](auto MR) {
          const float* p = b.s + size_t(r0) * kChunk;
          float* acc = b.acc + size_t(h * R + r0) * hd;
          int d0 = 0;
          const size_t* pfv = r0 == 0 ? pf : nullptr;
          for (; d0 + 64 <= hd; d0 += 64) pv_tile<decltype(MR)::value, 4>(kv, cur, d0, p, rescale + r0, acc, hd, n, pfv);
          if (d0 < hd) pv_tile<decltype(MR)::value, 2>(kv, cur, d0, p, rescale + r0, acc, hd, n, pfv);
        });
      });
    }
  }
  for (int h = 0; h < nh; ++h)
    for (int r = 0; r < R; ++r) {
      float* o = out + row_at(h, r);
      const Row& row = rows[h * R + r];
      const float inv = 1.f / row.l;
      const float* a = b.acc + size_t(h * R + r) * hd;
      for (int d = 0; d < hd; ++d) o[(d & ~31) + natural_dim(kv.dtype, d & 31)] = a[d] * inv;
    }
}

// Items (sequence, range of KV heads): as many heads per item as keep at least two items per
// thread (longer runs read the cache faster; bench/NOTES.md step 18), in near-equal ranges.
void decode_attention(const float* q, const std::vector<AttnSeq>& seqs, int n_heads, const KVLayer& kv,
                      float scale, float* out) {
  const int kvh = kv.n_kv_heads, group = n_heads / kvh, n = int(seqs.size());
  int max_rows = 1;
  double flops = 0;
  for (const AttnSeq& sq : seqs) {
    max_rows = std::max(max_rows, sq.n_new * group);
    flops += 4.0 * n_heads * kv.head_dim * sq.n_new * (sq.num_cached + sq.n_new);
  }
  const bool parallel = flops > kMinParallelFlops;
  const int threads = parallel ? omp_get_max_threads() : 1;
  int per = 1;
  while (per < kvh && (per + 1) * max_rows <= kMaxItemRows && n * kvh / (per + 1) >= 2 * threads) ++per;
  const int ranges = (kvh + per - 1) / per;
  per = (kvh + ranges - 1) / ranges;
  const int items = n * ranges;
  RegionErrors errors;
#pragma omp parallel if (parallel)
  {
    float* buf = nullptr;
    errors.run([&] { buf = static_cast<float*>(thread_scratch(ItemBuffers::floats(kv.head_dim) * sizeof(float))); });
#pragma omp for schedule(dynamic)
    for (int i = 0; i < items; ++i) {
      if (!buf) continue;  // no buffer: the error is rethrown below
      const int s = i / ranges, kv0 = i % ranges * per, kv1 = std::min(kv0 + per, kvh);
      attend_decode(q, seqs[size_t(s)], n_heads, group, kv0, kv1, kv, scale, ItemBuffers(buf, kv.head_dim), out);
    }
  }
  errors.rethrow();
}

}  // namespace

// Sequences with several new tokens take the prefill kernel, the rest the decode one (unless
// their rows exceed one item: the prefill kernel splits them by tokens). Head dims that are not
// a multiple of 32, or groups of more than kMaxItemRows query heads, take the AVX2 kernel.
void paged_attention_avx512(const float* q, const AttnSeq* seqs, int n_seqs, int n_heads, const KVLayer& kv,
                            float scale, float* out) {
  if (kv.head_dim % 32 != 0 || n_heads / kv.n_kv_heads > kMaxItemRows)
    return avx2_table().paged_attention(q, seqs, n_seqs, n_heads, kv, scale, out);
  const int group = n_heads / kv.n_kv_heads;
  std::vector<AttnSeq> prefill, decode;
  for (int s = 0; s < n_seqs; ++s) {
    if (seqs[s].n_new <= 0) continue;  // nothing to attend
    const bool small = seqs[s].n_new < kMinPrefillTokens && seqs[s].n_new * group <= kMaxItemRows;
    (small ? decode : prefill).push_back(seqs[s]);
  }
  if (!decode.empty()) decode_attention(q, decode, n_heads, kv, scale, out);
  if (!prefill.empty()) prefill_attention(q, prefill, n_heads, kv, scale, out);
}

}  // namespace nanovllm::kernels
