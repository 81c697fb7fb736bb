// Logits and greedy ids of tiny random checkpoints of every architecture against transformers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "model_test_util.h"

namespace nanovllm::test {
namespace {

struct GoldenCase {
  const char* name;     // tests/data/model/<name>/ and <name>.golden.json
  const char* kv_dtype;
  double rel_tol;       // max |ours - golden| / (max - min of the golden row)
  const char* quantization = "";
};

// f32 KV cache: only summation order differs from transformers, far below 1e-4 of the range.
// bf16 KV cache: each cached K/V element is rounded to 8 significant bits (relative error
// <= 2^-9 ~ 0.2%); attention outputs are averages of such values, so logits move by a
// fraction of a percent of their range; 1e-2 leaves room for two layers of it, while a real
// bug (a wrong head, position or scale) moves logits by tens of percent.
// bf16/f16 weights: the golden is transformers' f32 forward of the same rounded weights.
const GoldenCase kCases[] = {
    {"llama-f32", "f32", 1e-4},  {"mistral-f32", "f32", 1e-4}, {"qwen2-f32", "f32", 1e-4},
    {"qwen3-f32", "f32", 1e-4},  {"qwen3-bf16", "f32", 1e-4},  {"llama-f16", "f32", 1e-4},
    {"llama-f32", "bf16", 1e-2}, {"qwen2-f32", "bf16", 1e-2},  {"qwen3-bf16", "bf16", 1e-2},
    // int8 weights, rounded per row to amax / 254 at most: these random models' logits move by
    // 1.3-2.2 % of their range (measured); 4e-2 leaves twice that, while a wrong scale or row
    // moves them by tens of percent.
    {"llama-f32", "f32", 4e-2, "int8"}, {"mistral-f32", "f32", 4e-2, "int8"},
    {"qwen2-f32", "f32", 4e-2, "int8"}, {"qwen3-bf16", "f32", 4e-2, "int8"},
};

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

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
  const GoldenCase& c = GetParam();
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
      EXPECT_LE(rel_error(rows[t], logits[t]), c.rel_tol) << c.name << " position " << t;
    // The whole prompt as one prefill: the last position's logits.
    TestSeq whole(prompt, 16, 64, s.block_size);
    auto last = prefill(*r, s.block_size, whole, 0);
    EXPECT_LE(rel_error(last.back(), logits.back()), c.rel_tol) << c.name << " one-shot prefill";
  }
}

// Greedy ids must be identical. With a bf16 KV cache every logit may move by rel_tol of the
// range, so a choice whose golden margin is below 2 * rel_tol may flip legitimately: there the
// comparison stops (an f32 cache is compared over all steps).
TEST_P(GoldenTest, GreedyIdsMatchTransformers) {
  const GoldenCase& c = GetParam();
  nlohmann::json golden = read_json(data_dir() + "/" + c.name + ".golden.json");
  size_t compared = 0;
  for (const auto& p : golden["prompts"]) {
    std::vector<int> prompt = p["prompt_ids"].get<std::vector<int>>();
    std::vector<int> want = p["greedy_ids"].get<std::vector<int>>();
    std::vector<double> margins = p["greedy_margins"].get<std::vector<double>>();
    size_t decided = 0;
    while (decided < want.size() && (c.rel_tol <= 1e-4 || margins[decided] > 2 * c.rel_tol)) ++decided;
    RunnerSetup s{.block_size = 16, .num_blocks = 8, .kv_dtype = c.kv_dtype, .quantization = c.quantization};
    std::vector<int> got = greedy_from(data_dir() + "/" + c.name, prompt, static_cast<int>(want.size()), 0, s);
    want.resize(decided);
    got.resize(decided);
    EXPECT_EQ(got, want) << c.name << " kv " << c.kv_dtype << ", first " << decided << " ids";
    compared += decided;
  }
  // A pass that compared nothing would say nothing: shown as skipped instead.
  if (compared == 0) GTEST_SKIP() << "no golden margin above 2 x " << c.rel_tol << ": nothing to compare";
}

INSTANTIATE_TEST_SUITE_P(Checkpoints, GoldenTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) {
                           std::string n = std::string(info.param.name) + "_kv_" + info.param.kv_dtype;
                           if (*info.param.quantization) n += std::string("_") + info.param.quantization;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

}  // namespace
}  // namespace nanovllm::test
