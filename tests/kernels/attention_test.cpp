// kv_store + paged_attention under every ISA against a dense causal softmax in doubles.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels_test_util.h"

namespace nanovllm::kernels {
namespace {

struct Shape {
  int n_heads, n_kv_heads, head_dim, block_size;
  DType kv_dtype;
  std::vector<std::pair<int, int>> seqs;  // (num_cached, n_new)
};

// Random floats that bf16 represents exactly, so both cache dtypes hold the same values.
std::vector<float> bf16_exact_floats(size_t n, std::mt19937& rng) {
  std::vector<float> v = test::random_floats(n, rng, 2.f);
  for (float& f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u &= 0xffff0000u;
    std::memcpy(&f, &u, 4);
  }
  return v;
}

// Runs one batched attention and compares every output with the dense oracle.
void check_attention(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  const int hd = s.head_dim, row = s.n_kv_heads * hd, n_seqs = int(s.seqs.size());
  int total_blocks = 0, T = 0;
  std::vector<int> ctx(n_seqs);
  for (int i = 0; i < n_seqs; ++i) {
    ctx[i] = s.seqs[i].first + s.seqs[i].second;
    total_blocks += (ctx[i] + s.block_size - 1) / s.block_size + 1;
    T += s.seqs[i].second;
  }
  std::vector<int> perm(total_blocks);
  for (int i = 0; i < total_blocks; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);  // block tables out of order

  const size_t cache_elems = size_t(total_blocks) * s.block_size * row;
  std::vector<uint8_t> kc(cache_elems * dtype_size(s.kv_dtype) + 64), vc(kc.size());
  KVLayer kv{kc.data() + 4, vc.data() + 4, s.kv_dtype, s.block_size, s.n_kv_heads, hd};

  std::vector<std::vector<int>> tables(n_seqs);
  std::vector<std::vector<float>> keys(n_seqs), vals(n_seqs);
  std::vector<AttnSeq> seqs(n_seqs);
  int next_block = 0, q_off = 0;
  for (int i = 0; i < n_seqs; ++i) {
    const int nb = (ctx[i] + s.block_size - 1) / s.block_size + 1;
    tables[i].assign(perm.begin() + next_block, perm.begin() + next_block + nb);
    next_block += nb;
    keys[i] = bf16_exact_floats(size_t(ctx[i]) * row, rng);
    vals[i] = bf16_exact_floats(size_t(ctx[i]) * row, rng);
    std::vector<int> slots(ctx[i]);
    for (int p = 0; p < ctx[i]; ++p)
      slots[p] = tables[i][p / s.block_size] * s.block_size + p % s.block_size;
    // The cached prefix and the new tokens arrive in separate calls, as in the engine.
    const int nc = s.seqs[i].first;
    kv_store(kv, keys[i].data(), vals[i].data(), nc, slots.data());
    kv_store(kv, keys[i].data() + size_t(nc) * row, vals[i].data() + size_t(nc) * row,
             ctx[i] - nc, slots.data() + nc);
    seqs[i] = AttnSeq{q_off, s.seqs[i].second, nc, tables[i].data()};
    q_off += s.seqs[i].second;
  }

  const size_t qn = size_t(T) * s.n_heads * hd;
  std::vector<float> q = test::random_floats(qn + 1, rng, 1.f), out(qn + 1, NAN);
  const float scale = 1.f / std::sqrt(float(hd));
  paged_attention(q.data() + 1, seqs.data(), n_seqs, s.n_heads, kv, scale, out.data() + 1);

  const int group = s.n_heads / s.n_kv_heads;
  for (int i = 0; i < n_seqs; ++i)
    for (int t = 0; t < seqs[i].n_new; ++t)
      for (int h = 0; h < s.n_heads; ++h) {
        const size_t qi = 1 + (size_t(seqs[i].q_offset + t) * s.n_heads + h) * hd;
        const int L = seqs[i].num_cached + t + 1, kvh = h / group;
        std::vector<double> sc(L);
        double mx = -INFINITY, sum = 0;
        for (int p = 0; p < L; ++p) {
          double d = 0;
          for (int j = 0; j < hd; ++j) d += double(q[qi + j]) * keys[i][size_t(p) * row + kvh * hd + j];
          sc[p] = d * scale;
          mx = std::max(mx, sc[p]);
        }
        for (double& x : sc) sum += (x = std::exp(x - mx));
        for (int j = 0; j < hd; ++j) {
          double o = 0;
          for (int p = 0; p < L; ++p) o += sc[p] * vals[i][size_t(p) * row + kvh * hd + j];
          ASSERT_NEAR(out[qi + j], o / sum, 2e-5)
              << "seq " << i << " t " << t << " head " << h << " dim " << j;
        }
      }
}

class AttentionTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!force_isa(GetParam())) GTEST_SKIP() << "this CPU lacks " << GetParam();
  }
  void TearDown() override { force_isa(test::best_isa()); }
};

TEST_P(AttentionTest, PrefillDecodeAndCachedPrefixMatchDenseSoftmax) {
  uint32_t seed = 1;
  for (DType dt : {DType::F32, DType::BF16})
    for (int hd : {2, 8, 16, 30, 64, 128})
      for (int group : {1, 2, 3, 4, 7}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " hd=" << hd << " group=" << group);
        // A fresh prefill, decodes with long and short caches, a chunk after a cached prefix.
        Shape s{2 * group, 2, hd, 4, dt, {{0, 9}, {17, 1}, {1, 1}, {5, 6}, {0, 1}}};
        check_attention(s, seed++);
      }
}

// Prefills long enough for several token blocks and chunks of 32 positions per work item, with
// cached prefixes that end inside a chunk, head dims with a 32-dim tail past the 64-dim slices
// (96) and groups up to 16 query heads per KV head (items of 8 tokens x 16 rows on AVX-512).
TEST_P(AttentionTest, LongPrefillsAcrossChunksAndGroups) {
  uint32_t seed = 200;
  for (DType dt : {DType::F32, DType::BF16})
    for (int hd : {32, 96, 128})
      for (int group : {1, 2, 5, 16}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " hd=" << hd << " group=" << group);
        check_attention(Shape{2 * group, 2, hd, 16, dt, {{0, 40}, {37, 29}, {3, 1}, {0, 4}}}, seed++);
      }
}

TEST_P(AttentionTest, OddBlockSizesAndSingleHead) {
  uint32_t seed = 100;
  for (DType dt : {DType::F32, DType::BF16})
    for (int bs : {1, 3, 16}) {
      check_attention(Shape{1, 1, 32, bs, dt, {{40, 3}, {0, 33}}}, seed++);
      check_attention(Shape{8, 1, 48, bs, dt, {{7, 0}, {2, 2}}}, seed++);  // n_new = 0 too
    }
}

// Decode batches large enough that one work item covers several KV heads (the heads then walk
// each block together), with head counts that do not divide evenly into items (5 heads over 2
// threads: ranges of 2, 2 and 1; 3 heads with hd 30: 2 and 1), under several thread counts
// (which change how many heads an item takes).
TEST_P(AttentionTest, DecodeBatchesSpanningSeveralKvHeads) {
  uint32_t seed = 200;
  struct Case { int kv_heads, group, hd, n_seqs; };
  for (const Case c : {Case{8, 2, 128, 16}, Case{8, 2, 128, 3}, Case{4, 4, 64, 20}, Case{2, 7, 64, 40},
                       Case{8, 1, 16, 33}, Case{3, 2, 30, 24}, Case{3, 2, 30, 2}, Case{5, 2, 64, 1}})
    for (DType dt : {DType::F32, DType::BF16})
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " kv_heads=" << c.kv_heads << " group=" << c.group
                                        << " hd=" << c.hd << " seqs=" << c.n_seqs << " threads=" << threads);
        Shape s{c.kv_heads * c.group, c.kv_heads, c.hd, 16, dt, {}};
        // Mostly one new token; every fifth sequence three (one tile when the group is small).
        for (int i = 0; i < c.n_seqs; ++i) s.seqs.push_back({(i * 37) % 90, i % 5 ? 1 : 3});
        s.seqs.push_back({20, 9});  // a prefill chunk in the same call
        const int before = omp_get_max_threads();
        omp_set_num_threads(threads);
        check_attention(s, seed++);
        omp_set_num_threads(before);
      }
}

TEST_P(AttentionTest, NegativeSlotsAreSkipped) {
  std::vector<float> cache(8, 5.f), k(8, 1.f), v(8, 2.f);
  KVLayer kv{cache.data(), cache.data(), DType::F32, 2, 1, 4};
  const int slots[2] = {-1, 1};
  kv_store(kv, k.data(), v.data(), 2, slots);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(cache[j], 5.f);
  for (int j = 4; j < 8; ++j) EXPECT_EQ(cache[j], 2.f);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, AttentionTest, ::testing::Values("scalar", "avx2", "avx512bf16"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace nanovllm::kernels
