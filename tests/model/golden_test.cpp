// Logits and greedy ids of tiny random checkpoints of every architecture against transformers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>

#include "kernels/kernels.h"
#include "model_test_util.h"

namespace nanovllm::test {
namespace {

struct GoldenCase {
  const char* name;  // tests/data/model/<name>/ and <name>.golden.json
  kernels::DType weights;
  const char* kv_dtype;
  const char* quantization = "";
  // Whether greedy ids are compared. Not for int8 llama / mistral: every golden margin of
  // theirs, the first one included, is below 2 x their tolerance, so int8 rounding may
  // legitimately change every choice and the comparison would decide nothing. Their logits
  // are still compared at every position.
  bool greedy = true;
};

void PrintTo(const GoldenCase& c, std::ostream* os) {
  *os << c.name << " kv " << c.kv_dtype << (*c.quantization ? " " : "") << c.quantization;
}

// Every checkpoint dtype, KV cache dtype and quantization the runner offers.
const GoldenCase kCases[] = {
    {"llama-f32", kernels::DType::F32, "f32"},   {"mistral-f32", kernels::DType::F32, "f32"},
    {"qwen2-f32", kernels::DType::F32, "f32"},   {"qwen3-f32", kernels::DType::F32, "f32"},
    {"qwen3-bf16", kernels::DType::BF16, "f32"}, {"llama-f16", kernels::DType::F16, "f32"},
    {"llama-f32", kernels::DType::F32, "bf16"},  {"qwen2-f32", kernels::DType::F32, "bf16"},
    {"qwen3-bf16", kernels::DType::BF16, "bf16"},
    {"llama-f32", kernels::DType::F32, "f32", "int8", false},
    {"mistral-f32", kernels::DType::F32, "f32", "int8", false},
    {"qwen2-f32", kernels::DType::F32, "f32", "int8"}, {"qwen3-bf16", kernels::DType::BF16, "f32", "int8"},
};

// The error budget of a case under the active kernel table, as max |ours - golden| over the
// golden row's range. Independent sources of rounding add up:
// - f32 throughout: only summation order differs from transformers, far below 1e-4.
// - bf16 KV cache: each cached K/V element is rounded to 8 significant bits (relative error
//   <= 2^-9 ~ 0.2%); attention outputs average such values, so logits move by a fraction of a
//   percent of their range; 1e-2 leaves room for two layers of it.
// - activations rounded to bf16 before the matmul (the table's stated precision for these
//   weights): the same 2^-9 per element of x, on every projection; measured up to 3.8e-3 on
//   qwen3-bf16, 1e-2 again leaves room.
// - int8 weights, rounded per row to amax / 254 at most: these random models' logits move by
//   1.3-2.2 % of their range (measured); 4e-2 leaves twice that.
// A real bug (a wrong head, position, scale or row) moves logits by tens of percent.
// bf16/f16 weights: the golden is transformers' f32 forward of the same rounded weights.
double tolerance(const GoldenCase& c) {
  const kernels::DType matmul_dtype = *c.quantization ? kernels::DType::I8 : c.weights;
  double tol = 1e-4;
  if (std::string(c.kv_dtype) == "bf16") tol += 1e-2;
  if (kernels::matmul_precision(matmul_dtype) == kernels::Precision::kBF16) tol += 1e-2;
  if (*c.quantization) tol += 4e-2;
  return tol;
}

// Each case under each kernel table: the AVX2 path that users of AVX2 machines run is checked
// end to end on AVX-512 hosts too. A table this CPU lacks is reported as skipped, by name.
class GoldenTest : public ::testing::TestWithParam<std::tuple<GoldenCase, const char*>> {
 protected:
  void SetUp() override {
    if (!kernels::force_isa(isa())) GTEST_SKIP() << "this CPU lacks " << isa();
  }
  void TearDown() override { kernels::force_isa(best_isa()); }
  const GoldenCase& gc() const { return std::get<0>(GetParam()); }
  const char* isa() const { return std::get<1>(GetParam()); }
};

// Worst error relative to the golden row's range, over rows that we and the golden share.
double rel_error(const std::vector<float>& ours, const nlohmann::json& golden_row) {
  std::vector<float> g = golden_row.get<std::vector<float>>();
  EXPECT_EQ(ours.size(), g.size());
  auto [lo, hi] = std::minmax_element(g.begin(), g.end());
  double worst = 0;
  for (size_t i = 0; i < g.size() && i < ours.size(); ++i) worst = std::max(worst, std::fabs(double(ours[i]) - g[i]));
  if (std::getenv("NANOVLLM_PRINT_ERRORS")) std::printf("rel error %.3g\n", worst / (*hi - *lo));
  return worst / (*hi - *lo);
}

TEST_P(GoldenTest, PromptLogitsMatchTransformers) {
  const GoldenCase& c = gc();
  const double tol = tolerance(c);
  nlohmann::json golden = read_json(data_dir() + "/" + c.name + ".golden.json");
  for (const auto& p : golden["prompts"]) {
    std::vector<int> prompt = p["prompt_ids"].get<std::vector<int>>();
    const auto& logits = p["logits"];
    // Chunks of one token give the logits of every position, each through the cached path.
    RunnerSetup s{.block_size = 4, .num_blocks = 32, .kv_dtype = c.kv_dtype, .quantization = c.quantization};
    auto r = open_runner(data_dir() + "/" + c.name, s);
    TestSeq one_by_one(prompt, 0, 64, s.block_size);
    auto rows = prefill(*r, s.block_size, one_by_one, 1);
    ASSERT_EQ(rows.size(), logits.size());
    for (size_t t = 0; t < rows.size(); ++t)
      EXPECT_LE(rel_error(rows[t], logits[t]), tol) << c.name << " position " << t;
    // The whole prompt as one prefill: the last position's logits.
    TestSeq whole(prompt, 16, 64, s.block_size);
    auto last = prefill(*r, s.block_size, whole, 0);
    EXPECT_LE(rel_error(last.back(), logits.back()), tol) << c.name << " one-shot prefill";
  }
}

// Greedy ids must be identical. Where every logit may move by tol of the range, a choice whose
// golden margin is below 2 * tol may flip legitimately: there the comparison stops (all-f32
// cases are compared over all steps).
class GreedyGoldenTest : public GoldenTest {};

TEST_P(GreedyGoldenTest, GreedyIdsMatchTransformers) {
  const GoldenCase& c = gc();
  const double tol = tolerance(c);
  nlohmann::json golden = read_json(data_dir() + "/" + c.name + ".golden.json");
  size_t compared = 0;
  for (const auto& p : golden["prompts"]) {
    std::vector<int> prompt = p["prompt_ids"].get<std::vector<int>>();
    std::vector<int> want = p["greedy_ids"].get<std::vector<int>>();
    std::vector<double> margins = p["greedy_margins"].get<std::vector<double>>();
    size_t decided = 0;
    while (decided < want.size() && (tol <= 1e-4 || margins[decided] > 2 * tol)) ++decided;
    RunnerSetup s{.block_size = 16, .num_blocks = 8, .kv_dtype = c.kv_dtype, .quantization = c.quantization};
    std::vector<int> got = greedy_from(data_dir() + "/" + c.name, prompt, static_cast<int>(want.size()), 0, s);
    want.resize(decided);
    got.resize(decided);
    EXPECT_EQ(got, want) << c.name << " kv " << c.kv_dtype << ", first " << decided << " ids";
    compared += decided;
  }
  // A pass that compared nothing would prove nothing.
  EXPECT_GT(compared, 0u) << "no golden margin above 2 x " << tol << ": nothing compared";
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<GoldenCase, const char*>>& info) {
  const GoldenCase& c = std::get<0>(info.param);
  std::string n = std::string(c.name) + "_kv_" + c.kv_dtype;
  if (*c.quantization) n += std::string("_") + c.quantization;
  n += std::string("_") + std::get<1>(info.param);
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

std::vector<GoldenCase> greedy_cases() {
  std::vector<GoldenCase> out;
  for (const GoldenCase& c : kCases)
    if (c.greedy) out.push_back(c);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, GoldenTest,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::ValuesIn(kernels::kIsaNames)),
                         case_name);
INSTANTIATE_TEST_SUITE_P(Checkpoints, GreedyGoldenTest,
                         ::testing::Combine(::testing::ValuesIn(greedy_cases()),
                                            ::testing::ValuesIn(kernels::kIsaNames)),
                         case_name);

}  // namespace
}  // namespace nanovllm::test
