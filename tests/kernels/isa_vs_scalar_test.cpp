// Each SIMD implementation against the scalar reference on every small size around the vector
// width (0 .. 2 x 16 + 1), misaligned pointers and odd shapes, so edge and tail paths are hit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels_test_util.h"

namespace nanovllm::kernels {
namespace {

class IsaVsScalar : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!force_isa(GetParam())) GTEST_SKIP() << "this CPU lacks " << GetParam();
  }
  void TearDown() override { force_isa(test::best_isa()); }

  // Runs f once under the ISA under test and once under scalar; returns (simd, scalar).
  template <class F>
  std::pair<std::vector<float>, std::vector<float>> both(size_t out_n, F f) {
    // Index 0 is padding that makes the output misaligned; callers compare from index 1.
    std::vector<float> a(out_n + 1, NAN), b(out_n + 1, NAN);
    f(a.data() + 1);  // misaligned output
    force_isa("scalar");
    f(b.data() + 1);
    force_isa(GetParam());
    return {a, b};
  }
  bool rounds_x_to_bf16(DType dt) const { return matmul_precision(dt) == Precision::kBF16; }
};

TEST_P(IsaVsScalar, MatmulAllSmallK) {
  std::mt19937 rng(21);
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int K = 0; K <= 2 * 16 + 1 + 32; ++K)
      for (int M : {1, 2, 5})
        for (int N : {1, 4, 5, 9}) {
          SCOPED_TRACE(testing::Message() << dtype_name(dt) << " M=" << M << " N=" << N << " K=" << K);
          test::Matrix w = test::random_matrix(dt, N, K, rng);
          std::vector<float> x = test::random_floats(size_t(M) * K + 1, rng);
          std::vector<float> bias = test::random_floats(size_t(N), rng);
          auto [y, ref] = both(size_t(M) * N, [&](float* out) {
            matmul(x.data() + 1, M, w.view(), bias.data(), out);
          });
          for (size_t i = 1; i < y.size(); ++i) {
            const double tol = rounds_x_to_bf16(dt) ? 1e-2 * (1 + K) : 1e-5 * (1 + K);
            ASSERT_NEAR(y[i], ref[i], tol) << "at " << i;
          }
        }
}

// v rounded to the nearest bf16 value (ties to even), by bits: no NaN or inf in test data.
std::vector<float> bf16_values(std::vector<float> v) {
  for (float& f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    std::memcpy(&f, &u, 4);
  }
  return v;
}

// Weights in the layout this table prefers, at sizes around its register tiles (8 rows x 48
// outputs on AVX-512 BF16; M, N and K also not multiples of them), against the reference
// reading the same repacked matrix. x holds bf16 values, so a table that rounds x to bf16
// multiplies exactly what the reference does: a product of two bf16 is exact in f32, and only
// the order of the f32 sums differs.
TEST_P(IsaVsScalar, MatmulPreferredLayoutAroundTiles) {
  std::mt19937 rng(26);
  for (DType dt : {DType::BF16, DType::F32, DType::F16, DType::I8})
    for (int M : {1, 7, 9, 16, 25, 70})
      for (int N : {1, 15, 17, 47, 49, 97})
        for (int K : {1, 2, 33, 65}) {
          SCOPED_TRACE(testing::Message() << dtype_name(dt) << " M=" << M << " N=" << N << " K=" << K);
          test::Matrix w = test::random_matrix(dt, N, K, rng);
          const Layout layout = preferred_layout(dt);
          std::vector<uint8_t> buf(layout_bytes(w.view(), layout) + 1, 0xAB);  // padding must be written
          const WeightView wv = repack(w.view(), layout, buf.data());
          const std::vector<float> x = bf16_values(test::random_floats(size_t(M) * K + 1, rng));
          const std::vector<float> bias = test::random_floats(size_t(N), rng);
          const float* b = (M + N + K) % 2 ? bias.data() : nullptr;
          auto [y, ref] = both(size_t(M) * N, [&](float* out) { matmul(x.data() + 1, M, wv, b, out); });
          for (size_t i = 1; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], 1e-5 * (1 + K)) << "at " << i;
        }
}

TEST_P(IsaVsScalar, ElementwiseAllSmallSizes) {
  std::mt19937 rng(22);
  for (int n = 0; n <= 2 * 16 + 1; ++n) {
    SCOPED_TRACE(testing::Message() << "n=" << n);
    const int rows = 3;
    std::vector<float> x = test::random_floats(size_t(rows) * 2 * n + 1, rng, 4.f);
    std::vector<float> wt = test::random_floats(size_t(n) + 1, rng);
    auto [a, b] = both(size_t(rows) * n, [&](float* out) {
      rmsnorm(x.data() + 1, wt.data() + 1, rows, n, 1e-5f, out);
    });
    for (size_t i = 1; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 * (1 + std::fabs(b[i]))) << i;
    auto [c, d] = both(size_t(rows) * n, [&](float* out) { silu_mul(x.data() + 1, rows, n, out); });
    for (size_t i = 1; i < c.size(); ++i) ASSERT_NEAR(c[i], d[i], 1e-5 * (1 + std::fabs(d[i]))) << i;
  }
}

TEST_P(IsaVsScalar, RopeAllSmallHeadDims) {
  std::mt19937 rng(23);
  for (int hd = 0; hd <= 2 * 2 * 16 + 2; hd += 2) {
    SCOPED_TRACE(testing::Message() << "head_dim=" << hd);
    const int T = 3, H = 2;
    const std::vector<int> pos = {0, 9, 1000};
    std::vector<float> inv(size_t(hd / 2) + 1);
    for (int i = 0; i < hd / 2; ++i) inv[i] = float(std::pow(10000.0, -2.0 * i / hd));
    const std::vector<float> x = test::random_floats(size_t(T) * H * hd, rng);
    auto [a, b] = both(x.size(), [&](float* out) {
      if (!x.empty()) std::memcpy(out, x.data(), x.size() * sizeof(float));
      rope(out, T, H, hd, pos.data(), inv.data());
    });
    for (size_t i = 1; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << i;
  }
}

TEST_P(IsaVsScalar, AttentionAllSmallHeadDimsAndContexts) {
  std::mt19937 rng(24);
  for (DType dt : {DType::F32, DType::BF16})
    for (int hd = 2; hd <= 2 * 16 + 2; hd += 2)
      for (int ctx : {1, 2, 31, 32, 33, 70}) {
        SCOPED_TRACE(testing::Message() << dtype_name(dt) << " hd=" << hd << " ctx=" << ctx);
        const int H = 4, KVH = 2, bs = 8, nb = (ctx + bs - 1) / bs;
        std::vector<int> table(nb);
        for (int i = 0; i < nb; ++i) table[i] = (i * 5 + 3) % nb;  // a permutation: nb is never a multiple of 5 here
        std::vector<uint8_t> kc(size_t(nb) * bs * KVH * hd * 4 + 8), vc(kc.size());
        KVLayer kv{kc.data() + 4, vc.data() + 4, dt, bs, KVH, hd};
        std::vector<int> slots(ctx);
        for (int p = 0; p < ctx; ++p) slots[p] = table[p / bs] * bs + p % bs;
        const auto k = test::random_floats(size_t(ctx) * KVH * hd, rng, 3.f);
        const auto v = test::random_floats(k.size(), rng);
        kv_store(kv, k.data(), v.data(), ctx, slots.data());
        // The last 3 positions are new tokens (a prefill chunk after a cached prefix).
        const int n_new = ctx < 3 ? ctx : 3;
        const AttnSeq seq{0, n_new, ctx - n_new, table.data()};
        const auto q = test::random_floats(size_t(n_new) * H * hd + 1, rng);
        auto [a, b] = both(size_t(n_new) * H * hd, [&](float* out) {
          paged_attention(q.data() + 1, &seq, 1, H, kv, 0.3f, out);
        });
        for (size_t i = 1; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 2e-5) << i;
      }
}

// Rounding to bf16 must be bit-identical to the scalar path: ties, NaN, infinities, subnormals.
TEST_P(IsaVsScalar, KvStoreBitIdentical) {
  std::mt19937 rng(25);
  const uint32_t specials[] = {0x3f808000u, 0x3f818000u, 0x7fc00001u, 0xff800000u, 0x80000000u,
                               0x00000001u, 0x7f7fffffu, 0x3f80ffffu, 0xbf7f8000u, 0x7f800001u};
  for (DType dt : {DType::BF16, DType::F32})
    for (auto [heads, hd, n] : {std::tuple{1, 2, 3}, {1, 18, 5}, {2, 34, 4}, {8, 128, 200}}) {
      SCOPED_TRACE(testing::Message() << dtype_name(dt) << " heads=" << heads << " hd=" << hd << " n=" << n);
      const size_t row = size_t(heads) * hd, bs = 4, blocks = size_t(n) / bs + 2;
      std::vector<float> k = test::random_floats(size_t(n) * row, rng, 3.f), v = k;
      std::shuffle(v.begin(), v.end(), rng);
      for (size_t i = 0; i < k.size(); i += 7) std::memcpy(&k[i], &specials[(i / 7) % 10], 4);
      std::vector<int> slots(n);
      for (int i = 0; i < n; ++i) slots[i] = (i * 5 + 1) % int(blocks * bs);
      slots[0] = slots[n / 2] = -1;  // padding tokens, first and inside (whose prefetch is skipped)
      std::vector<uint8_t> a(blocks * bs * row * 4, 0xab), b = a, c = a, d = a;
      kv_store(KVLayer{a.data(), c.data(), dt, int(bs), heads, hd}, k.data(), v.data(), n, slots.data());
      force_isa("scalar");
      kv_store(KVLayer{b.data(), d.data(), dt, int(bs), heads, hd}, k.data(), v.data(), n, slots.data());
      force_isa(GetParam());
      ASSERT_EQ(a, b);
      ASSERT_EQ(c, d);
    }
}

INSTANTIATE_TEST_SUITE_P(Simd, IsaVsScalar, ::testing::Values("avx2", "avx512bf16"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace nanovllm::kernels
