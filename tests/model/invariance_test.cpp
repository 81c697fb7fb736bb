// Greedy outputs do not depend on how a step is composed: chunk size, block size, batch mix,
// cached prefix, thread count.
#include <gtest/gtest.h>

#include <tuple>

#include "kernels/kernels.h"
#include "model_test_util.h"

namespace nanovllm::test {
namespace {

struct Golden {
  std::vector<int> prompt, greedy;
};

// llama (Llama 3 RoPE scaling, untied) and qwen3 (q/k norms, head_dim != hidden / heads).
const char* const kModels[] = {"llama-f32", "qwen3-f32"};

std::vector<Golden> goldens(const std::string& name) {
  const nlohmann::json golden = read_json(data_dir() + "/" + name + ".golden.json");
  std::vector<Golden> out;
  for (const auto& p : golden["prompts"])
    out.push_back({p["prompt_ids"].get<std::vector<int>>(), p["greedy_ids"].get<std::vector<int>>()});
  EXPECT_EQ(out.size(), 2u) << name;
  return out;
}

// Under each kernel table this CPU has (one it lacks is reported as skipped, by name), and on
// the torch backend (runner "torch", f32 on the CPU). These f32 checkpoints keep activations in
// f32 under every table, so each must give the golden ids.
class InvarianceTest : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {
 protected:
  void SetUp() override {
    if (std::string(isa()) == "torch" || std::string(isa()) == "onnx") {
      test_backend() = isa();
      return;
    }
    if (!kernels::force_isa(isa())) GTEST_SKIP() << "this CPU lacks " << isa();
  }
  void TearDown() override {
    test_backend() = "native";
    kernels::force_isa(best_isa());
  }
  const char* model() const { return std::get<0>(GetParam()); }
  const char* isa() const { return std::get<1>(GetParam()); }
  std::string dir() const { return data_dir() + "/" + model(); }
  int n_new(const Golden& g) const { return static_cast<int>(g.greedy.size()); }
};

TEST_P(InvarianceTest, ChunkAndBlockSizes) {
  for (const Golden& g : goldens(model()))
    for (int block_size : {1, 4, 16})
      for (int chunk : {1, 3, 7, 0}) {
        RunnerSetup s{.block_size = block_size, .num_blocks = 64 / block_size + 8, .kv_dtype = "f32"};
        EXPECT_EQ(greedy_from(dir(), g.prompt, n_new(g), chunk, s), g.greedy)
            << model() << " block " << block_size << " chunk " << chunk;
      }
}

TEST_P(InvarianceTest, ThreadCounts) {
  for (const Golden& g : goldens(model()))
    for (int threads : {1, 2, 3}) {
      RunnerSetup s{.block_size = 4, .num_blocks = 32, .kv_dtype = "f32", .threads = threads};
      EXPECT_EQ(greedy_from(dir(), g.prompt, n_new(g), 5, s), g.greedy) << model() << " threads " << threads;
    }
}

// With a bf16 KV cache (no golden of its own) this table gives the scalar reference's ids.
TEST_P(InvarianceTest, Bf16CacheMatchesScalarKernels) {
  if (test_backend() != "native") GTEST_SKIP() << "kernel tables are the native backend's";
  for (const Golden& g : goldens(model())) {
    RunnerSetup s{.block_size = 4, .num_blocks = 32, .kv_dtype = "bf16"};
    ASSERT_TRUE(kernels::force_isa("scalar"));
    std::vector<int> scalar = greedy_from(dir(), g.prompt, n_new(g), 5, s);
    ASSERT_TRUE(kernels::force_isa(isa()));
    EXPECT_EQ(greedy_from(dir(), g.prompt, n_new(g), 5, s), scalar) << model() << " scalar vs " << isa();
  }
}

// Three sequences share steps: A decodes while B prefills in chunks of 5 and C (A's prompt
// again) joins later; every step mixes prefill chunks and decodes in one flattened batch.
TEST_P(InvarianceTest, MixedBatches) {
  std::vector<Golden> g = goldens(model());
  ASSERT_GE(g.size(), 2u);
  const int bs = 4;
  auto r = open_runner(dir(), {.block_size = bs, .num_blocks = 64, .kv_dtype = "f32"});
  TestSeq a(g[0].prompt, 0, 48, bs), b(g[1].prompt, 16, 48, bs), c(g[0].prompt, 32, 48, bs);
  std::vector<TestSeq*> seqs{&a, &b, &c};
  std::vector<const Golden*> want{&g[0], &g[1], &g[0]};
  std::vector<std::vector<int>> got(3);
  for (int step = 0; step < 64; ++step) {
    std::vector<Part> parts;
    std::vector<int> who;
    for (int i = 0; i < 3; ++i) {
      TestSeq& s = *seqs[i];
      if (i == 2 && step < 4) continue;  // C arrives later
      if (got[i].size() == want[i]->greedy.size()) continue;
      int n = i == 1 ? std::min(5, s.pending()) : s.pending();  // B's prompt in chunks of 5
      parts.push_back({&s, n, n == s.pending()});
      if (parts.back().sample) who.push_back(i);
    }
    if (parts.empty()) break;
    Logits l = run_step(*r, bs, parts);
    ASSERT_EQ(l.rows, static_cast<int>(who.size()));
    for (size_t k = 0; k < who.size(); ++k) {
      int next = argmax(l.row(static_cast<int>(k)), l.vocab);
      got[who[k]].push_back(next);
      seqs[who[k]]->tokens.push_back(next);
    }
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], want[i]->greedy) << model() << " sequence " << i;
}

// A prefix-cache hit: B's block table starts with A's full blocks of the same prompt, so B
// computes only the rest (num_cached > 0 on its first step) and must continue as A did.
TEST_P(InvarianceTest, CachedPrefix) {
  for (const Golden& g : goldens(model())) {
    const int bs = 4;
    auto r = open_runner(dir(), {.block_size = bs, .num_blocks = 64, .kv_dtype = "f32"});
    TestSeq a(g.prompt, 0, 48, bs);
    prefill(*r, bs, a, 0);
    const int shared_blocks = (static_cast<int>(g.prompt.size()) - 1) / bs;  // at least one token left
    TestSeq b(g.prompt, 32, 48, bs);
    for (int i = 0; i < shared_blocks; ++i) b.blocks[i] = a.blocks[i];
    b.num_cached = shared_blocks * bs;
    EXPECT_EQ(greedy(*r, bs, b, n_new(g), 2), g.greedy) << model() << " cached " << b.num_cached;
  }
}

// A step whose slices sample nothing (a prefill chunk mid-prompt) returns no rows.
TEST_P(InvarianceTest, NoSamplingRows) {
  const Golden g = goldens(model())[1];
  auto r = open_runner(dir(), {.block_size = 4, .num_blocks = 32, .kv_dtype = "f32"});
  TestSeq s(g.prompt, 0, 48, 4);
  Logits l = run_step(*r, 4, {{&s, 3, false}});
  EXPECT_EQ(l.rows, 0);
  EXPECT_TRUE(l.data.empty());
}

std::string param_name(const ::testing::TestParamInfo<InvarianceTest::ParamType>& info) {
  std::string n = std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
}

#ifdef NANOVLLM_ONNX_TESTS  // compiled into onnx_tests too, which run after ctest's onnx exports
INSTANTIATE_TEST_SUITE_P(Onnx, InvarianceTest, ::testing::Combine(::testing::ValuesIn(kModels), ::testing::Values("onnx")),
                         param_name);
#else
INSTANTIATE_TEST_SUITE_P(Models, InvarianceTest,
                         ::testing::Combine(::testing::ValuesIn(kModels), ::testing::ValuesIn(kernels::kIsaNames)),
                         param_name);
#ifdef NANOVLLM_HAVE_TORCH
INSTANTIATE_TEST_SUITE_P(Torch, InvarianceTest, ::testing::Combine(::testing::ValuesIn(kModels), ::testing::Values("torch")),
                         param_name);
#endif
#endif

}  // namespace
}  // namespace nanovllm::test
