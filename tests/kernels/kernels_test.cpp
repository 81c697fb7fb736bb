// Every kernel under every ISA this CPU has, against straightforward double-precision loops.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels_test_util.h"

namespace nanovllm::kernels {
namespace {

using test::Matrix;

class KernelsTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!force_isa(GetParam())) GTEST_SKIP() << "this CPU lacks " << GetParam();
  }
  void TearDown() override { force_isa(test::best_isa()); }
  // Relative error allowed in a dot product, relative to sum |x_k w_k|: the table's stated
  // precision. x rounded to bf16 is off by up to 2^-9 relative per term.
  double dot_tol(DType wt) const { return matmul_precision(wt) == Precision::kBF16 ? 8e-3 : 2e-5; }
};

// y = x W^T + b in doubles, and sum |x||w| per output (the scale of rounding error).
void matmul_oracle(const std::vector<float>& x, int M, const Matrix& w, const float* bias,
                   std::vector<double>* y, std::vector<double>* mag) {
  y->assign(size_t(M) * w.rows, 0.0);
  mag->assign(size_t(M) * w.rows, 0.0);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < w.rows; ++n) {
      double acc = bias ? bias[n] : 0.0, a = bias ? std::fabs(bias[n]) : 0.0;
      for (int k = 0; k < w.cols; ++k) {
        const double p = double(x[size_t(m) * w.cols + k]) * w.value(n, k);
        acc += p;
        a += std::fabs(p);
      }
      (*y)[size_t(m) * w.rows + n] = acc;
      (*mag)[size_t(m) * w.rows + n] = a;
    }
}

// w as stored (kRows), or repacked into panels by the code under test into buf.
WeightView in_layout(const Matrix& w, Layout layout, std::vector<uint8_t>* buf) {
  if (layout == Layout::kRows) return w.view();
  buf->assign(layout_bytes(w.view(), layout) + 1, 0xAB);  // poison: padding must be written
  return repack(w.view(), layout, buf->data());
}

const char* layout_name(Layout l) {
  return l == Layout::kRows ? "rows" : l == Layout::kPanels ? "panels" : "pair panels";
}

TEST_P(KernelsTest, MatmulMatchesDoubleLoops) {
  std::mt19937 rng(7);
  for (Layout layout : {Layout::kRows, Layout::kPanels, Layout::kPairPanels})
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::I8})
    for (int M : {1, 2, 3, 5, 8, 17, 64, 65})
      if (layout != Layout::kPairPanels || dt == DType::BF16)  // pair panels exist for vdpbf16ps
      for (int N : {1, 3, 17, 31, 64, 130})
        for (int K : {0, 1, 3, 17, 31, 64, 65, 130}) {
          SCOPED_TRACE(testing::Message() << layout_name(layout) << " " << dtype_name(dt)
                                          << " M=" << M << " N=" << N << " K=" << K);
          Matrix w = test::random_matrix(dt, N, K, rng);
          std::vector<uint8_t> packed;
          const WeightView wv = in_layout(w, layout, &packed);
          std::vector<float> x = test::random_floats(size_t(M) * K + 1, rng);
          std::vector<float> bias = test::random_floats(size_t(N), rng);
          const float* xp = x.data() + 1;  // misaligned by one float on purpose
          std::vector<float> xs(xp, xp + size_t(M) * K);
          const bool with_bias = (N + K) % 2 == 0;
          std::vector<float> y(size_t(M) * N + 1, NAN);
          matmul(xp, M, wv, with_bias ? bias.data() : nullptr, y.data() + 1);
          std::vector<double> ref, mag;
          matmul_oracle(xs, M, w, with_bias ? bias.data() : nullptr, &ref, &mag);
          for (size_t i = 0; i < ref.size(); ++i)
            ASSERT_NEAR(y[i + 1], ref[i], dot_tol(dt) * mag[i] + 1e-6) << "at " << i;
        }
}

// Long rows are processed in K slices by some ISAs (partial sums go through y): K > 4096.
TEST_P(KernelsTest, MatmulLongRowsMatchDoubleLoops) {
  std::mt19937 rng(9);
  for (Layout layout : {Layout::kRows, Layout::kPanels, Layout::kPairPanels})
  for (DType dt : {DType::BF16, DType::F32, DType::I8})
    for (int M : {1, 3, 9})
      if (layout != Layout::kPairPanels || dt == DType::BF16)
      for (int K : {4096 + 37, 8192 + 16}) {
        SCOPED_TRACE(testing::Message() << layout_name(layout) << " " << dtype_name(dt)
                                        << " M=" << M << " K=" << K);
        const int N = 19;
        Matrix w = test::random_matrix(dt, N, K, rng);
        std::vector<uint8_t> packed;
        const WeightView wv = in_layout(w, layout, &packed);
        std::vector<float> x = test::random_floats(size_t(M) * K, rng);
        std::vector<float> bias = test::random_floats(size_t(N), rng);
        std::vector<float> y(size_t(M) * N);
        matmul(x.data(), M, wv, bias.data(), y.data());
        std::vector<double> ref, mag;
        matmul_oracle(x, M, w, bias.data(), &ref, &mag);
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(y[i], ref[i], dot_tol(dt) * mag[i] + 1e-5) << "at " << i;
      }
}

TEST_P(KernelsTest, MatmulWithNoRowsOrNoOutputsWritesNothing) {
  Matrix w = test::random_matrix(DType::BF16, 0, 8, *std::make_unique<std::mt19937>(1));
  float y = 42.f, x[8] = {};
  matmul(x, 1, w.view(), nullptr, &y);
  matmul(x, 0, w.view(), nullptr, &y);
  EXPECT_EQ(y, 42.f);
}

TEST_P(KernelsTest, RmsnormMatchesDoubleLoops) {
  std::mt19937 rng(3);
  for (int n : {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 64, 1024, 1031}) {
    const int rows = n == 1024 ? 150 : 3;  // 150 x 1024: big enough to be split over threads
    std::vector<float> x = test::random_floats(size_t(rows) * n + 1, rng);
    std::vector<float> wt = test::random_floats(size_t(n) + 1, rng);
    std::vector<float> out(size_t(rows) * n + 1);
    rmsnorm(x.data() + 1, wt.data() + 1, rows, n, 1e-6f, out.data() + 1);
    for (int r = 0; r < rows; ++r) {
      double ss = 0;
      for (int i = 0; i < n; ++i) ss += double(x[1 + r * n + i]) * x[1 + r * n + i];
      const double inv = 1.0 / std::sqrt(ss / n + 1e-6);
      for (int i = 0; i < n; ++i)
        ASSERT_NEAR(out[1 + r * n + i], x[1 + r * n + i] * inv * wt[1 + i], 2e-5) << n << " " << i;
    }
    rmsnorm(x.data() + 1, wt.data() + 1, rows, n, 1e-6f, x.data() + 1);  // in place
    for (size_t i = 1; i < out.size(); ++i) ASSERT_FLOAT_EQ(x[i], out[i]);
  }
}

TEST_P(KernelsTest, RopeRotatesHalvesByPositionTimesInvFreq) {
  std::mt19937 rng(5);
  for (int hd : {2, 4, 8, 16, 32, 34, 64, 128}) {
    const int T = hd == 128 ? 200 : 5, H = 3, half = hd / 2;  // 200 tokens: split over threads
    std::vector<float> x = test::random_floats(size_t(T) * H * hd + 1, rng);
    std::vector<float> orig = x;
    std::vector<float> inv_freq(half);
    for (int i = 0; i < half; ++i) inv_freq[i] = float(std::pow(10000.0, -2.0 * i / hd));
    std::vector<int> pos = {0, 1, 7, 300, 4095};
    for (int t = 5; t < T; ++t) pos.push_back(t * 37);
    rope(x.data() + 1, T, H, hd, pos.data(), inv_freq.data());
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h)
        for (int i = 0; i < half; ++i) {
          const size_t b = 1 + (size_t(t) * H + h) * hd;
          const double ang = double(float(pos[t]) * inv_freq[i]);
          const double a = orig[b + i], c = orig[b + i + half];
          ASSERT_NEAR(x[b + i], a * std::cos(ang) - c * std::sin(ang), 1e-5);
          ASSERT_NEAR(x[b + i + half], c * std::cos(ang) + a * std::sin(ang), 1e-5);
        }
  }
}

TEST_P(KernelsTest, SiluMulMatchesDoubleLoops) {
  std::mt19937 rng(11);
  for (int n : {1, 7, 8, 9, 16, 17, 33, 3072, 3077}) {
    const int rows = n == 3072 ? 30 : 2;  // 30 x 3072: split over threads
    std::vector<float> gu = test::random_floats(size_t(rows) * 2 * n + 1, rng, 12.f);
    gu[1] = -100.f;  // saturated sigmoid must give 0, not NaN
    gu[2 % (2 * n) + 1] = 100.f;
    std::vector<float> out(size_t(rows) * n + 1);
    silu_mul(gu.data() + 1, rows, n, out.data() + 1);
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < n; ++i) {
        const double g = gu[1 + size_t(r) * 2 * n + i], u = gu[1 + size_t(r) * 2 * n + n + i];
        const double ref = g / (1 + std::exp(-g)) * u;
        ASSERT_NEAR(out[1 + size_t(r) * n + i], ref, 2e-6 * (1 + std::fabs(ref))) << n << " " << i;
      }
  }
}

TEST_P(KernelsTest, EmbedConvertsRowsOfEveryDtype) {
  std::mt19937 rng(13);
  for (Layout layout : {Layout::kRows, Layout::kPanels, Layout::kPairPanels})
  for (DType dt : {DType::F32, DType::BF16, DType::F16, DType::I8})
    for (int K : {1, 7, 16, 33, 64}) {
      SCOPED_TRACE(testing::Message() << layout_name(layout) << " " << dtype_name(dt) << " K=" << K);
      Matrix t = test::random_matrix(dt, 21, K, rng);
      const std::vector<int> ids = {3, 0, 20, 3, 17};
      std::vector<uint8_t> packed;
      std::vector<float> out(ids.size() * K + 1);
      embed(in_layout(t, layout, &packed), ids.data(), int(ids.size()), out.data() + 1);
      for (size_t i = 0; i < ids.size(); ++i)
        for (int k = 0; k < K; ++k) ASSERT_EQ(out[1 + i * K + k], float(t.value(ids[i], k)));
    }
}

// Each row's largest |w| becomes +-127 and every element lands within half a step of its value.
TEST(KernelsQuantize, Int8RowsRoundToTheirScale) {
  std::mt19937 rng(17);
  for (DType dt : {DType::F32, DType::BF16}) {
    Matrix w = test::random_matrix(dt, 9, 70, rng);
    for (int k = 0; k < w.cols; ++k) {  // row 4 all zero
      const size_t i = size_t(4) * w.cols + k;
      std::memset(&w.bytes[i * dtype_size(dt)], 0, dtype_size(dt));
      w.values[i] = 0;
    }
    std::vector<int8_t> q(size_t(w.rows) * w.cols);
    std::vector<float> scales(size_t(w.rows), NAN);
    const WeightView v = quantize_int8(w.view(), q.data(), scales.data());
    EXPECT_EQ(v.dtype, DType::I8);
    EXPECT_EQ(v.scales, scales.data());
    for (int n = 0; n < w.rows; ++n) {
      double amax = 0;
      int qmax = 0;
      for (int k = 0; k < w.cols; ++k) {
        amax = std::max(amax, std::fabs(w.value(n, k)));
        qmax = std::max(qmax, std::abs(int(q[size_t(n) * w.cols + k])));
      }
      ASSERT_NEAR(scales[n], amax / 127, 1e-6 * amax) << "row " << n;
      EXPECT_EQ(qmax, n == 4 ? 0 : 127) << "row " << n;
      for (int k = 0; k < w.cols; ++k)
        ASSERT_LE(std::fabs(q[size_t(n) * w.cols + k] * double(scales[n]) - w.value(n, k)), 0.5001 * scales[n])
            << "row " << n << " col " << k;
    }
  }
}

TEST(KernelsQuantize, NonFiniteWeightsAndInt8SourcesAreRefused) {
  const float w[4] = {1.f, NAN, 2.f, 3.f};
  int8_t q[4];
  float scales[2];
  EXPECT_THROW(quantize_int8(WeightView{w, DType::F32, 2, 2}, q, scales), std::logic_error);
  const int8_t i8[4] = {1, 2, 3, 4};
  EXPECT_THROW(quantize_int8(WeightView{i8, DType::I8, 2, 2, Layout::kRows, scales}, q, scales), std::logic_error);
  // A row so small that 127 / max overflows f32 still rounds by its own scale.
  const float tiny[2] = {5e-38f, -2e-37f};
  ASSERT_NO_THROW(quantize_int8(WeightView{tiny, DType::F32, 1, 2}, q, scales));
  EXPECT_EQ(q[0], 32);
  EXPECT_EQ(q[1], -127);
  // int8 weights without their scales are rejected before any kernel reads them.
  float x[2] = {1.f, 1.f}, y[2];
  EXPECT_THROW(matmul(x, 1, WeightView{i8, DType::I8, 2, 2}, nullptr, y), std::logic_error);
}

TEST(KernelsConversion, HalfPrecisionSpecialValuesDecodeExactly) {
  const uint16_t bits[] = {0x3c00, 0xc000, 0x3800, 0x0001, 0x03ff, 0x7bff, 0x0000, 0x8000, 0x7c00, 0xfc00};
  const float want[] = {1.f, -2.f, 0.5f, 5.9604645e-8f, 6.0975552e-5f, 65504.f, 0.f, -0.f, INFINITY, -INFINITY};
  for (const char* isa : {"scalar", "avx2", "avx512bf16"}) {
    if (!force_isa(isa)) continue;
    WeightView v{bits, DType::F16, 10, 1};
    std::vector<int> ids(10);
    std::iota(ids.begin(), ids.end(), 0);
    float out[10];
    embed(v, ids.data(), 10, out);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(out[i], want[i]) << isa << " " << i;
  }
  force_isa(test::best_isa());
}

TEST(KernelsDispatch, NamesAndForcing) {
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::I8), 1u);
  EXPECT_STREQ(dtype_name(DType::I8), "I8");
  EXPECT_STREQ(dtype_name(DType::F16), "F16");
  EXPECT_FALSE(force_isa("neon"));
  EXPECT_TRUE(force_isa("scalar"));
  EXPECT_STREQ(isa_name(), "scalar");
  force_isa(test::best_isa());
  EXPECT_STREQ(isa_name(), test::best_isa());
}

TEST(KernelsDispatch, BadArgumentsAreRejected) {
  WeightView w{nullptr, DType::F32, 4, 4};
  float x[4] = {}, y[4];
  EXPECT_THROW(matmul(x, 1, w, nullptr, y), std::logic_error);
  float table[8] = {};
  const int bad = 2;
  EXPECT_THROW(embed(WeightView{table, DType::F32, 2, 4}, &bad, 1, y), std::logic_error);
}

// Caps this process's address space at what it maps now plus `headroom` bytes.
void cap_address_space(size_t headroom) {
  size_t pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  const rlim_t cap = rlim_t(pages) * rlim_t(sysconf(_SC_PAGESIZE)) + headroom;
  const rlimit r{cap, cap};
  setrlimit(RLIMIT_AS, &r);
}

// A matmul whose per-thread buffer cannot be allocated, inside the thread team; prints how it
// ended. Thrown out of an OpenMP region the error would call std::terminate instead.
void matmul_under_memory_cap(const WeightView& w, int M) {
  std::vector<float> x(size_t(M) * w.cols, 1.f), y(size_t(M) * w.rows);
  cap_address_space(size_t(8) << 20);
  try {
    matmul(x.data(), M, w, nullptr, y.data());
    std::fprintf(stderr, "completed\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  }
}

// Row-major weights with 4M columns: the scalar matmul (which every ISA uses for row-major
// int8) allocates a row per thread, AVX2's row-major path a 16-row panel per thread, both
// inside the team. Either the call completes (a path that needs no buffer) or the failure
// reaches the caller as an exception; the child must exit normally.
TEST_P(KernelsTest, AllocationFailureInsideThreadTeamReachesCaller) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan reserves its shadow memory up front: an address-space cap breaks it";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  constexpr int K = 1 << 22;
  const char* isa = GetParam();
  auto child = [&](DType dt, int M) {
    force_isa(isa);
    std::vector<float> warm_x(64 * 64, 1.f), warm_y(64 * 64);  // start the thread team
    matmul(warm_x.data(), 64, WeightView{warm_x.data(), DType::F32, 64, 64}, nullptr, warm_y.data());
    std::vector<int8_t> q(K, 1);
    std::vector<float> f(K, 0.5f), scale{1.f};
    matmul_under_memory_cap(dt == DType::I8 ? WeightView{q.data(), DType::I8, 1, K, Layout::kRows, scale.data()}
                                            : WeightView{f.data(), DType::F32, 1, K},
                            M);
    std::exit(0);
  };
  EXPECT_EXIT(child(DType::I8, 2), ::testing::ExitedWithCode(0), "completed|error: ") << "int8";
  EXPECT_EXIT(child(DType::F32, 8), ::testing::ExitedWithCode(0), "completed|error: ") << "f32";
#endif
}

TEST(KernelsDispatch, TablesStateTheirPrecision) {
  for (const char* isa : kIsaNames) {
    if (!force_isa(isa)) continue;
    for (DType dt : {DType::F32, DType::F16, DType::I8})
      EXPECT_EQ(matmul_precision(dt), Precision::kF32) << isa << " " << dtype_name(dt);
    // Only vdpbf16ps rounds x: every other table widens the weights and keeps x in f32.
    EXPECT_EQ(matmul_precision(DType::BF16),
              std::strcmp(isa, "avx512bf16") == 0 ? Precision::kBF16 : Precision::kF32) << isa;
    // BF16 weights in the pairs vdpbf16ps multiplies where the table has it.
    EXPECT_EQ(preferred_layout(DType::BF16), std::strcmp(isa, "avx512bf16") == 0 ? Layout::kPairPanels
                                             : std::strcmp(isa, "avx2") == 0    ? Layout::kPanels
                                                                                : Layout::kRows) << isa;
    // Quantized weights: the SIMD tables round x to int8 per 32, the reference keeps it f32.
    for (DType dt : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q5_K, DType::Q6_K})
      EXPECT_EQ(matmul_precision(dt), std::strcmp(isa, "scalar") == 0 ? Precision::kF32 : Precision::kQ8)
          << isa << " " << dtype_name(dt);
  }
  force_isa(test::best_isa());
}

INSTANTIATE_TEST_SUITE_P(AllIsas, KernelsTest, ::testing::ValuesIn(kIsaNames),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace nanovllm::kernels
