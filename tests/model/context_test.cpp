// Per-runner kernel context (kernels::Context): two native runners in one process, built under
// different kernel tables and thread counts, each compute exactly as when it is alone; a runner
// leaves its caller's OpenMP team size as it found it.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>

#include "model_test_util.h"
#include "nanovllm/llm.h"

namespace nanovllm::test {
namespace {

// bf16 weights: the AVX-512 BF16 table rounds activations to bf16 for them, the scalar one keeps
// f32, so their logprobs differ in every token (the AVX2 table's f32 sums differ in the last bits).
const std::string kModel = data_dir() + "/qwen3-bf16";
const std::vector<std::vector<int>> kPrompts = {{1, 200, 12, 116, 107}, {1, 5, 9, 2, 7, 3, 11}};

Config config(int threads) {
  Config c;
  c.threads = threads;
  c.kv_cache_dtype = "f32";
  c.kv_cache_bytes = 8 << 20;
  return c;
}

// Every request's token ids and the chosen and top-3 logprobs, as one flat list.
std::vector<float> outputs(LLM& llm) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 8;
  p.ignore_eos = true;
  p.logprobs = 3;
  std::vector<float> out;
  for (const RequestOutput& r : llm.generate(kPrompts, p, false))
    for (const TokenLogprob& t : r.logprobs) {
      out.push_back(static_cast<float>(t.token_id));
      out.push_back(t.logprob);
      for (const auto& [id, lp] : t.top) out.insert(out.end(), {static_cast<float>(id), lp});
    }
  return out;
}

// A runner built and run alone while `isa` is the process default.
std::vector<float> alone(const char* isa, int threads) {
  EXPECT_TRUE(kernels::force_isa(isa));
  LLM llm(kModel, config(threads));
  std::vector<float> out = outputs(llm);
  kernels::force_isa(best_isa());
  return out;
}

class KernelContext : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::strcmp(best_isa(), "scalar") == 0) GTEST_SKIP() << "this CPU has only the scalar kernel table";
  }
  void TearDown() override { kernels::force_isa(best_isa()); }
};

// Before, the process had one table: runner A, built (and laid out) for the scalar table, ran
// through whichever table was forced last, B's.
TEST_F(KernelContext, TwoRunnersWithTheirOwnTablesAndThreadsEachComputeAsAlone) {
  const std::vector<float> scalar = alone("scalar", 1), best = alone(best_isa(), 2);
  ASSERT_NE(scalar, best) << "the two tables must give different numbers for this test to tell them apart";
  ASSERT_TRUE(kernels::force_isa("scalar"));
  LLM a(kModel, config(1));
  ASSERT_TRUE(kernels::force_isa(best_isa()));
  LLM b(kModel, config(2));
  EXPECT_EQ(outputs(a), scalar);
  EXPECT_EQ(outputs(b), best);
  EXPECT_EQ(outputs(a), scalar);  // after b's steps on the same thread
}

// The native backend's "isa" option picks a runner's table whatever the process default is.
TEST_F(KernelContext, TheIsaOptionChoosesTheRunnersTable) {
  const std::vector<float> scalar = alone("scalar", 2);
  Config c = config(2);
  c.backend_options["isa"] = "scalar";
  LLM llm(kModel, c);
  EXPECT_EQ(outputs(llm), scalar);
  c.backend_options["isa"] = "neon";
  try {
    LLM bad(kModel, c);
    ADD_FAILURE() << "isa 'neon' was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'neon'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("scalar"), std::string::npos) << e.what();
  }
}

// The team size is the calling thread's: a runner with 1 thread left it at 1 for everything the
// caller ran after a step (another runner's weight loading, the caller's own OpenMP code).
TEST_F(KernelContext, ARunnerLeavesTheCallersTeamSizeAsItFoundIt) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(3);
  {
    LLM llm(kModel, config(1));
    outputs(llm);
    EXPECT_EQ(omp_get_max_threads(), 3);
  }
  omp_set_num_threads(before);
}

}  // namespace
}  // namespace nanovllm::test
