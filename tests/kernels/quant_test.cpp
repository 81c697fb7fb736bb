// ggml's quantized dtypes: dequantization against gguf-py (the golden file that
// scripts/gen_quant_goldens.py wrote); the activation quantizers and dot products against
// llama.cpp's own CPU code (scripts/gen_act_quant_goldens.py); every ISA's matmul / embed against
// the scalar references and against an f32 matmul of the dequantized weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels_test_util.h"
#include "nanovllm/error.h"

namespace nanovllm::kernels {
namespace {

constexpr DType kQuantTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<uint8_t> from_hex(const std::string& s) {
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(std::stoul(s.substr(2 * i, 2), nullptr, 16));
  return out;
}

uint16_t f16_bits(float f) {  // normal values only, truncated: what the tests need
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const int exp = int((u >> 23) & 0xff) - 127 + 15;
  return uint16_t(((u >> 16) & 0x8000) | uint32_t(exp) << 10 | ((u >> 13) & 0x3ff));
}

// Rows of random blocks, starting at byte 1 (misaligned, as a view into a file may be): random
// bytes, with the f16 scales set to sane values (|d| in [2^-12, 2^-2]; K-quant d and dmin
// positive, as ggml's quantizers make them).
std::vector<uint8_t> random_quant_rows(DType t, int rows, int cols, std::mt19937& rng) {
  std::vector<uint8_t> bytes(1 + size_t(rows) * row_bytes(t, cols));
  std::uniform_int_distribution<int> byte(0, 255), expo(-12, -3);
  std::uniform_real_distribution<float> man(1.f, 2.f);
  for (uint8_t& b : bytes) b = uint8_t(byte(rng));
  const bool k_quant = block_elems(t) == 256;
  std::vector<size_t> offsets = {0};
  if (t == DType::Q4_1 || t == DType::Q4_K || t == DType::Q5_K) offsets.push_back(2);
  if (t == DType::Q6_K) offsets = {208};
  const size_t bb = row_bytes(t, block_elems(t)), blocks = size_t(rows) * size_t(cols / block_elems(t));
  for (size_t b = 0; b < blocks; ++b)
    for (size_t off : offsets) {
      const float sign = !k_quant && byte(rng) % 2 ? -1.f : 1.f;
      const uint16_t h = f16_bits(sign * std::ldexp(man(rng), expo(rng)));
      std::memcpy(&bytes[1 + b * bb + off], &h, 2);
    }
  return bytes;
}

std::vector<float> dequantized(DType t, const uint8_t* data, int rows, int cols) {
  std::vector<float> w(size_t(rows) * cols);
  for (int r = 0; r < rows; ++r)
    dequantize_row(t, data + size_t(r) * row_bytes(t, cols), cols, w.data() + size_t(r) * cols);
  return w;
}

// The block of x that a kQ8 matmul rounds together for weights of t (ggml's Q8_0 / Q8_1 or Q8_K).
int x_block(DType t) { return act_quant(t) == ActQuant::kQ8_K ? 256 : 32; }

// tests/kernels/data/act_quant_goldens.txt (scripts/gen_act_quant_goldens.py): rows of x, their
// blocks from llama.cpp's own quantize_row_q8_0 / q8_1 / q8_K, and its vec_dot of weight rows
// of every type with them.
struct GgmlGoldens {
  int M = 0, K = 0;
  std::vector<float> x;
  std::vector<std::vector<uint8_t>> act;  // by ActQuant
  struct Dot { DType t; int N; std::vector<uint8_t> w; std::vector<float> y; };  // y [M][N]
  std::vector<Dot> dots;
};

template <class T>
std::vector<T> from_hex_as(const std::string& hex) {
  const std::vector<uint8_t> b = from_hex(hex);
  std::vector<T> out(b.size() / sizeof(T));
  std::memcpy(out.data(), b.data(), out.size() * sizeof(T));
  return out;
}

DType dtype_named(const std::string& name) {
  const auto it = std::find_if(std::begin(kQuantTypes), std::end(kQuantTypes),
                               [&](DType t) { return name == dtype_name(t); });
  return it == std::end(kQuantTypes) ? DType::F32 : *it;
}

const GgmlGoldens& ggml_goldens() {
  static const GgmlGoldens g = [] {
    GgmlGoldens g;
    g.act.resize(3);
    std::ifstream in(std::string(NANOVLLM_SOURCE_DIR) + "/tests/kernels/data/act_quant_goldens.txt");
    std::string line, tag, name, hex, hex2;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      ls >> tag;
      if (tag == "X") {
        ls >> g.M >> g.K >> hex;
        g.x = from_hex_as<float>(hex);
      } else if (tag == "ACT") {
        ls >> name >> hex;
        g.act[name == "Q8_0" ? 0 : name == "Q8_1" ? 1 : 2] = from_hex(hex);
      } else if (tag == "DOT") {
        GgmlGoldens::Dot d;
        ls >> name >> d.N >> hex >> hex2;
        d.t = dtype_named(name);
        d.w = from_hex(hex);
        d.y = from_hex_as<float>(hex2);
        g.dots.push_back(std::move(d));
      }
    }
    return g;
  }();
  return g;
}

constexpr ActQuant kActQuants[] = {ActQuant::kQ8_0, ActQuant::kQ8_1, ActQuant::kQ8_K};
const char* act_name(ActQuant a) { return a == ActQuant::kQ8_0 ? "Q8_0" : a == ActQuant::kQ8_1 ? "Q8_1" : "Q8_K"; }

// Each ISA's activation quantizer (the one its matmul runs), by the name force_isa takes.
using ActQuantizer = void (*)(ActQuant, const float*, int64_t, void*);
ActQuantizer act_quantizer(const std::string& isa) {
  if (isa == "avx2") return quantize_act_row_avx2;
  if (isa == "avx512bf16") return quantize_act_row_avx512;
  return quantize_act_row_ref;
}

TEST(Quant, BlockSizes) {
  EXPECT_EQ(block_elems(DType::F32), 1);
  EXPECT_EQ(block_elems(DType::I8), 1);
  EXPECT_EQ(row_bytes(DType::BF16, 7), 14u);
  EXPECT_EQ(row_bytes(DType::Q8_0, 64), 68u);
  EXPECT_EQ(row_bytes(DType::Q4_0, 96), 54u);
  EXPECT_EQ(row_bytes(DType::Q4_1, 32), 20u);
  EXPECT_EQ(row_bytes(DType::Q4_K, 512), 288u);
  EXPECT_EQ(row_bytes(DType::Q5_K, 256), 176u);
  EXPECT_EQ(row_bytes(DType::Q6_K, 768), 630u);
  for (DType t : kQuantTypes) EXPECT_EQ(block_elems(t), std::string(dtype_name(t)).find("_K") != std::string::npos ? 256 : 32);
  // A quantized row holds whole blocks; anything else is the input's fault, named.
  try {
    row_bytes(DType::Q4_K, 576);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Q4_K"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("576"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dequantize_row(DType::Q8_0, nullptr, 33, nullptr), Error);
  EXPECT_THROW(dtype_size(DType::Q4_0), std::logic_error);
}

// Block by block, bit for bit, what gguf-py's numpy reference decodes from the same bytes.
TEST(Quant, DequantizeMatchesGgufPy) {
  std::ifstream in(std::string(NANOVLLM_SOURCE_DIR) + "/tests/kernels/data/quant_goldens.txt");
  ASSERT_TRUE(in) << "tests/kernels/data/quant_goldens.txt is missing (scripts/gen_quant_goldens.py)";
  std::string line;
  int types = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name, hex_blocks, hex_values;
    int n_blocks = 0;
    ls >> name >> n_blocks >> hex_blocks >> hex_values;
    const auto it = std::find_if(std::begin(kQuantTypes), std::end(kQuantTypes),
                                 [&](DType t) { return name == dtype_name(t); });
    ASSERT_NE(it, std::end(kQuantTypes)) << name;
    const DType t = *it;
    const std::vector<uint8_t> blocks = from_hex(hex_blocks), value_bits = from_hex(hex_values);
    const int n = n_blocks * block_elems(t);
    ASSERT_EQ(blocks.size(), row_bytes(t, n)) << name;
    ASSERT_EQ(value_bits.size(), size_t(n) * 4) << name;
    // One block at a time, and the whole run as one row.
    std::vector<float> one(static_cast<size_t>(block_elems(t))), all(static_cast<size_t>(n));
    dequantize_row(t, blocks.data(), n, all.data());
    for (int b = 0; b < n_blocks; ++b) {
      dequantize_row(t, blocks.data() + b * row_bytes(t, block_elems(t)), block_elems(t), one.data());
      for (int i = 0; i < block_elems(t); ++i) {
        const size_t at = size_t(b) * block_elems(t) + i;
        uint32_t bits = 0;  // the hex digits are big-endian text of the f32 bit pattern
        for (int j = 0; j < 4; ++j) bits = bits << 8 | value_bits[at * 4 + j];
        float want;
        std::memcpy(&want, &bits, 4);
        ASSERT_EQ(one[i], want) << name << " block " << b << " element " << i;
        ASSERT_EQ(all[at], want) << name << " element " << at;
      }
    }
    ++types;
  }
  EXPECT_EQ(types, int(std::size(kQuantTypes)));
}

class QuantIsa : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (!force_isa(GetParam())) GTEST_SKIP() << "this CPU lacks " << GetParam();
  }
  void TearDown() override { force_isa(test::best_isa()); }
};

// y = x W^T in f64 from the dequantized weights, and a bound on the error of an f32 matmul:
// 1e-5 sum |w x| for the f32 sums, plus, where x is rounded to int8 per block of `x_block` (kQ8:
// 32, or 256 for the K-quants' Q8_K), what that may change: sum |w| * 0.57 (amax of x's block /
// 127), half a step plus the f16 rounding of the step (2^-11 of 127 steps). rel: the bound's
// share of sum |w x| (1e-5 for f32 sums; kBF16 rounds x and the decoded w to bf16, 2^-9 each).
void reference(const std::vector<float>& x, int M, const std::vector<float>& w, int N, int K,
               int x_block, std::vector<double>* y, std::vector<double>* bound, double rel = 1e-5) {
  y->assign(size_t(M) * N, 0.0);
  bound->assign(size_t(M) * N, 0.0);
  const bool rounds_x = x_block > 0;
  for (int m = 0; m < M; ++m) {
    std::vector<double> half_step(static_cast<size_t>(K));
    for (int k0 = 0; rounds_x && k0 < K; k0 += x_block) {
      float amax = 0.f;
      for (int k = k0; k < k0 + x_block; ++k) amax = std::max(amax, std::fabs(x[size_t(m) * K + k]));
      for (int k = k0; k < k0 + x_block; ++k) half_step[k] = amax / 127.0 * 0.57;
    }
    for (int n = 0; n < N; ++n) {
      double s = 0, b = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        const double wk = w[size_t(n) * K + k], xk = x[size_t(m) * K + k];
        s += wk * xk;
        b += std::fabs(wk) * half_step[k];
        mag += std::fabs(wk * xk);
      }
      (*y)[size_t(m) * N + n] = s;
      (*bound)[size_t(m) * N + n] = (rounds_x ? b : 0.0) + rel * mag + 1e-6;
    }
  }
}

// bf16's relative rounding (2^-9) of x and of the decoded weights, and f32 sums.
constexpr double kBf16Rel = 2.0 / 512 + 1e-5;

// A precision's bound on |y - y_f64| as a share of sum |w x| (besides the int8 rounding of x).
double rel_of(Precision p) { return p == Precision::kBF16 ? kBf16Rel : 1e-5; }

// Every dtype, both row roles, odd sizes: rows not a multiple of 16, M = 1, 3, 17, 45 (row tiles
// of the prompt-row GEMM: 6 / 6 / 5 and 8 x 5 + 5, or 6 x 7 + 3), N up to 7 panels (three decoded
// groups, the last partial), one to several blocks per row (an odd number of 32-groups too),
// misaligned pointers: within the rounding bound of x (int8 blocks or bf16, by matmul_precision
// of the role) of an f64 product of gguf-checked dequantized weights, and of the scalar table's
// result.
TEST_P(QuantIsa, MatmulMatchesDequantizedWeights) {
  std::mt19937 rng(151);
  for (DType t : kQuantTypes) {
    const int be = block_elems(t);
    for (int K : {be, 3 * be, 5 * be, 9 * be})  // 9: 8 blocks of 32 gathered at once, and one more
      for (int M : {1, 3, 17, 45})
        for (int N : {1, 17, 33, 100}) {
          SCOPED_TRACE(testing::Message() << dtype_name(t) << " M=" << M << " N=" << N << " K=" << K);
          const std::vector<uint8_t> bytes = random_quant_rows(t, N, K, rng);
          const WeightView wv{bytes.data() + 1, t, N, K};
          const std::vector<float> w = dequantized(t, bytes.data() + 1, N, K);
          std::vector<float> x = test::random_floats(size_t(M) * K + 1, rng, 2.f);
          const std::vector<float> bias = test::random_floats(size_t(N), rng);
          std::vector<float> y(size_t(M) * N + 1, NAN);
          matmul(x.data() + 1, M, wv, bias.data(), y.data() + 1);
          const bool q8 = matmul_precision(t) == Precision::kQ8;
          const double rel = rel_of(matmul_precision(t));
          std::vector<double> ref, bound, ref_f32, bound_f32;
          reference(std::vector<float>(x.begin() + 1, x.end()), M, w, N, K, q8 ? x_block(t) : 0, &ref, &bound, rel);
          reference(std::vector<float>(x.begin() + 1, x.end()), M, w, N, K, 0, &ref_f32, &bound_f32);
          // And against the scalar table, which keeps x in f32 (within 1e-5 sum |w x| of ref),
          // and, where x is rounded, against the scalar twin of that rounding (ggml's formulas):
          // the same up to f32 summation order.
          std::vector<float> y_scalar(y.size(), NAN), y_twin(y.size(), NAN);
          force_isa("scalar");
          matmul(x.data() + 1, M, wv, bias.data(), y_scalar.data() + 1);
          force_isa(GetParam());
          matmul_quant_ref(x.data() + 1, M, wv, bias.data(), y_twin.data() + 1);
          for (size_t i = 0; i < ref.size(); ++i) {
            ASSERT_NEAR(y[i + 1], ref[i] + bias[i % N], bound[i] + 1e-6) << "at " << i;
            ASSERT_NEAR(y[i + 1], y_scalar[i + 1], 2 * bound[i] + 1e-6) << "at " << i;
            if (q8) {
              ASSERT_NEAR(y[i + 1], y_twin[i + 1], bound_f32[i] + 1e-6) << "at " << i;
            }
          }
          // Prompt rows (the ISA's GEMM), against the same f64 product and the scalar table.
          {
            const Precision pp = matmul_precision(t, RowRole::kPrompt);
            std::vector<double> ref_g, bound_g;
            reference(std::vector<float>(x.begin() + 1, x.end()), M, w, N, K, pp == Precision::kQ8 ? x_block(t) : 0,
                      &ref_g, &bound_g, rel_of(pp));
            std::vector<float> y_gemm(y.size(), NAN);
            matmul(x.data() + 1, M, wv, bias.data(), y_gemm.data() + 1, RowRole::kPrompt);
            for (size_t i = 0; i < ref_g.size(); ++i) {
              ASSERT_NEAR(y_gemm[i + 1], ref_g[i] + bias[i % N], bound_g[i] + 1e-6) << "gemm at " << i;
              ASSERT_NEAR(y_gemm[i + 1], y_scalar[i + 1], 2 * bound_g[i] + 1e-6) << "gemm at " << i;
            }
          }
        }
  }
}

// Bit for bit what llama.cpp's CPU code makes of the golden rows (ties rounded to even, f16
// subnormal and zero scales, Q8_K's sign of the first largest |x|), by every ISA's quantizer;
// and on random rows of every magnitude, every ISA's quantizer equals the scalar one.
TEST_P(QuantIsa, ActivationsRoundedAsGgml) {
  const GgmlGoldens& g = ggml_goldens();
  ASSERT_EQ(g.x.size(), size_t(g.M) * g.K) << "tests/kernels/data/act_quant_goldens.txt is missing or short";
  const ActQuantizer quantize = act_quantizer(GetParam());
  for (ActQuant a : kActQuants) {
    const size_t rb = act_row_bytes(a, g.K);
    ASSERT_EQ(g.act[int(a)].size(), g.M * rb) << act_name(a);
    for (int m = 0; m < g.M; ++m) {
      std::vector<uint8_t> ours(rb, 0xAA);
      quantize(a, g.x.data() + size_t(m) * g.K, g.K, ours.data());
      for (size_t i = 0; i < rb; ++i)
        ASSERT_EQ(int(ours[i]), int(g.act[int(a)][m * rb + i])) << act_name(a) << " row " << m << " byte " << i;
    }
  }
  std::mt19937 rng(154);
  std::uniform_real_distribution<float> expo(-30.f, 30.f);
  for (int trial = 0; trial < 200; ++trial) {
    const int K = 256 * (1 + trial % 3);
    std::vector<float> x = test::random_floats(size_t(K), rng);
    const float scale = std::exp2(expo(rng));
    for (float& v : x) v *= scale;
    for (ActQuant a : kActQuants) {
      std::vector<uint8_t> ours(act_row_bytes(a, K), 0xAA), ref(act_row_bytes(a, K), 0x55);
      quantize(a, x.data(), K, ours.data());
      quantize_act_row_ref(a, x.data(), K, ref.data());
      ASSERT_EQ(ours, ref) << act_name(a) << " trial " << trial << " scale " << scale;
    }
  }
}

// ggml's own vec_dot of every weight type with the golden rows: our scalar formula and every
// ISA's matmul give it up to f32 summation order (2e-6 of sum |w x|). x rounded any other way
// (an f32 block scale, the wrong block for the K-quants, no Q8_1 s) misses it by ~1e-4.
TEST_P(QuantIsa, DotProductsAreGgmls) {
  const GgmlGoldens& g = ggml_goldens();
  ASSERT_EQ(g.dots.size(), std::size(kQuantTypes)) << "tests/kernels/data/act_quant_goldens.txt";
  for (const auto& d : g.dots) {
    SCOPED_TRACE(dtype_name(d.t));
    const WeightView wv{d.w.data(), d.t, d.N, g.K};
    const std::vector<float> w = dequantized(d.t, d.w.data(), d.N, g.K);
    // The scalar table keeps x in f32: there its twin, matmul_quant_ref, stands in.
    std::vector<float> y(size_t(g.M) * d.N);
    if (matmul_precision(d.t) == Precision::kQ8) matmul(g.x.data(), g.M, wv, nullptr, y.data());
    else matmul_quant_ref(g.x.data(), g.M, wv, nullptr, y.data());
    const ActQuant a = act_quant(d.t);
    const size_t rb = act_row_bytes(a, g.K);
    for (int m = 0; m < g.M; ++m)
      for (int n = 0; n < d.N; ++n) {
        double mag = 0;
        for (int k = 0; k < g.K; ++k) mag += std::fabs(double(w[size_t(n) * g.K + k]) * g.x[size_t(m) * g.K + k]);
        const float want = d.y[size_t(m) * d.N + n];
        const float formula = vec_dot_ref(d.t, g.K, d.w.data() + n * row_bytes(d.t, g.K), g.act[int(a)].data() + m * rb);
        ASSERT_NEAR(formula, want, 2e-6 * mag) << "vec_dot_ref, x row " << m << " w row " << n;
        ASSERT_NEAR(y[size_t(m) * d.N + n], want, 2e-6 * mag) << "matmul, x row " << m << " w row " << n;
      }
  }
}

// The precision the tables state, measured: max |y - y_f32| / max |y_f32| for Gaussian x and
// an M x 1024 x 1024 matmul, y_f32 the f32 product of the dequantized weights; M = 4 decode rows
// and 64 prompt rows (the ISA's GEMM: AVX-512 bf16, AVX2 f32).
TEST_P(QuantIsa, ErrorAgainstF32) {
  std::mt19937 rng(152);
  std::normal_distribution<float> normal;
  for (int M : {4, 64}) {
    for (DType t : kQuantTypes) {
      const int N = 1024, K = 1024;
      std::vector<float> x(size_t(M) * K);
      for (float& v : x) v = normal(rng);
      const std::vector<uint8_t> bytes = random_quant_rows(t, N, K, rng);
      const std::vector<float> w = dequantized(t, bytes.data() + 1, N, K);
      std::vector<float> y(size_t(M) * N);
      const RowRole role = M == 64 ? RowRole::kPrompt : RowRole::kDecode;
      matmul(x.data(), M, WeightView{bytes.data() + 1, t, N, K}, nullptr, y.data(), role);
      std::vector<double> ref, bound;
      reference(x, M, w, N, K, 0, &ref, &bound);
      double err = 0, mag = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        err = std::max(err, std::fabs(y[i] - ref[i]));
        mag = std::max(mag, std::fabs(ref[i]));
      }
      const Precision p = matmul_precision(t, role);
      std::printf("[ %s ] %s M=%d: max relative error vs f32 %.2e (x %s)\n", GetParam(), dtype_name(t), M, err / mag,
                  precision_name(p));
      EXPECT_LT(err / mag, p == Precision::kQ8 ? 1e-2 : p == Precision::kBF16 ? 4e-3 : 1e-5) << dtype_name(t) << " M=" << M;
    }
  }
}

// A row's result is its own, bit for bit, whatever the other rows of the call: the row computed
// alone (M = 1) and as row i of M = 2 .. 64 rows (every place in the register tiles, edge tiles
// of 1 .. 7 rows, more than one row tile), for each role, every dtype, N with a partial panel
// and a partial decoded group, threads on. This is what lets the engine batch a token with any
// others (RowRole: the role picks the path, never M).
TEST_P(QuantIsa, RowsDoNotDependOnTheOtherRows) {
  std::mt19937 rng(153);
  const int N = 100, Mmax = 64;
  for (DType t : kQuantTypes) {
    const int K = 2 * block_elems(t) > 256 ? 2 * block_elems(t) : 256;
    const std::vector<uint8_t> bytes = random_quant_rows(t, N, K, rng);
    const WeightView wv{bytes.data() + 1, t, N, K};
    const std::vector<float> x = test::random_floats(size_t(Mmax) * K, rng, 2.f);
    const std::vector<float> bias = test::random_floats(size_t(N), rng);
    for (RowRole role : {RowRole::kDecode, RowRole::kPrompt}) {
      SCOPED_TRACE(testing::Message() << dtype_name(t) << (role == RowRole::kPrompt ? " prompt" : " decode"));
      std::vector<float> alone(size_t(Mmax) * N);
      for (int m = 0; m < Mmax; ++m)
        matmul(x.data() + size_t(m) * K, 1, wv, bias.data(), alone.data() + size_t(m) * N, role);
      for (int M : {2, 3, 7, 8, 9, 15, 16, 17, 24, 33, 45, 64})
        for (int first : {0, Mmax - M}) {
          std::vector<float> y(size_t(M) * N);
          matmul(x.data() + size_t(first) * K, M, wv, bias.data(), y.data(), role);
          ASSERT_EQ(0, std::memcmp(y.data(), alone.data() + size_t(first) * N, y.size() * sizeof(float)))
              << "rows " << first << " .. " << first + M - 1 << " differ from the rows alone";
        }
    }
  }
}

// The SIMD row decoders behind the many-row GEMMs against the scalar reference decoder: equal
// up to one f32 rounding (they fuse ggml's multiply and add into an FMA).
TEST_P(QuantIsa, SimdRowDecoderIsTheReference) {
  using Decoder = void (*)(const WeightView&, int, int, float*, float*);
  const Decoder decode = std::strcmp(GetParam(), "avx2") == 0         ? dequantize_rows_avx2
                         : std::strcmp(GetParam(), "avx512bf16") == 0 ? dequantize_rows_avx512
                                                                      : nullptr;
  if (!decode) GTEST_SKIP() << GetParam() << " has no SIMD decoder";
  std::mt19937 rng(155);
  for (DType t : kQuantTypes) {
    const int N = 5, K = 7 * block_elems(t);
    const std::vector<uint8_t> bytes = random_quant_rows(t, N, K, rng);
    const std::vector<float> want = dequantized(t, bytes.data() + 1, N, K);
    std::vector<float> got(size_t(N - 1) * K, NAN), scratch(2 * size_t(K) / 16);
    decode(WeightView{bytes.data() + 1, t, N, K}, 1, N, scratch.data(), got.data());  // rows 1..4
    // One rounding of a u or of b (ggml's Q4_1 / K-quant sums can cancel): 2^-24 of the row's largest.
    const float amax = std::fabs(*std::max_element(want.begin(), want.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }));
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[size_t(K) + i], 3e-7 * amax) << dtype_name(t) << " at " << i;
  }
}

TEST_P(QuantIsa, EmbedIsTheDequantizedRow) {
  std::mt19937 rng(153);
  for (DType t : kQuantTypes) {
    const int V = 19, K = 2 * block_elems(t);
    const std::vector<uint8_t> bytes = random_quant_rows(t, V, K, rng);
    const std::vector<float> w = dequantized(t, bytes.data() + 1, V, K);
    const std::vector<int> ids = {0, 18, 7, 7};
    std::vector<float> out(ids.size() * K);
    embed(WeightView{bytes.data() + 1, t, V, K}, ids.data(), int(ids.size()), out.data());
    for (size_t i = 0; i < ids.size(); ++i)
      for (int k = 0; k < K; ++k) ASSERT_EQ(out[i * K + k], w[size_t(ids[i]) * K + k]) << dtype_name(t);
  }
}

// The tables keep quantized weights as the file stores them: nothing to repack.
TEST_P(QuantIsa, LayoutIsRows) {
  for (DType t : kQuantTypes) {
    EXPECT_EQ(preferred_layout(t), Layout::kRows) << dtype_name(t);
    const WeightView w{nullptr, t, 3, block_elems(t)};
    EXPECT_EQ(layout_bytes(w, Layout::kRows), 3 * row_bytes(t, block_elems(t)));
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantIsa, ::testing::ValuesIn(kIsaNames),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace nanovllm::kernels
