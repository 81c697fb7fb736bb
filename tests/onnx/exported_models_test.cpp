// Checkpoints exported by scripts/export_onnx.py (ctest's fixture onnx_exports puts them in
// BUILD/onnx-models, see export-test-models.sh) running on the onnx backend: the native runner's
// logits (f32, within 1e-4 of each row's range) and greedy ids on every test checkpoint and
// TinyStories-656K, transformers' greedy ids, and the engine's outputs through LLM.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "model/model_test_util.h"
#include "nanovllm/llm.h"
#include "nanovllm/tokenizer.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;

// The checkpoints whose exports the fixture makes.
std::vector<std::string> source_dirs() { return test_checkpoint_dirs(); }

TEST(OnnxExport, EveryTestCheckpointWasExported) {
  for (const std::string& dir : source_dirs())
    EXPECT_TRUE(fs::exists(onnx_export_dir(dir) + "/model.onnx"))
        << dir << " has no export in " << onnx_export_dir(dir) << " (ctest's fixture onnx_exports makes it)";
}

// Two sequences side by side in every step (a 7-token prompt prefilled in chunks of 3 and a
// 12-token one in chunks of 5, over interleaved blocks), then 12 decode steps fed the native
// greedy tokens: every logits row of both runners compared. The native runner runs its scalar
// table, which keeps activations f32 for every weight dtype (AVX-512 BF16 rounds them).
TEST(OnnxExport, LogitsAndGreedyIdsMatchTheNativeRunner) {
  ASSERT_TRUE(kernels::force_isa("scalar"));
  struct Restore {
    ~Restore() { kernels::force_isa(best_isa()); }
  } restore;
  for (const std::string& dir : source_dirs()) {
    SCOPED_TRACE(dir);
    const int bs = 4;
    auto native = runner("native", dir, bs);
    auto onnx = runner("onnx", dir, bs);
    ASSERT_EQ(onnx->info().vocab_size, native->info().vocab_size);
    const int vocab = native->info().vocab_size;
    const std::vector<std::vector<int>> prompts{{1, 5, 9, 2, 7, 3, 11}, {1, 4, 4, 8, 15, 16, 23, 42, 6, 10, 12, 14}};
    std::vector<TestSeq> n_seqs{{prompts[0], 0, 32, bs}, {prompts[1], 8, 32, bs}};
    std::vector<TestSeq> o_seqs = n_seqs;
    std::vector<std::vector<int>> ids_native(2), ids_onnx(2);
    double worst = 0;
    while (ids_native[0].size() < 12 || ids_native[1].size() < 12) {
      std::vector<Part> pn, po;
      for (int i = 0; i < 2; ++i) {
        const int n = std::min(i == 0 ? 3 : 5, n_seqs[i].pending());
        pn.push_back({&n_seqs[i], n, true});
        po.push_back({&o_seqs[i], n, true});
      }
      Logits ln = run_step(*native, bs, pn), lo = run_step(*onnx, bs, po);
      ASSERT_EQ(lo.rows, 2);
      ASSERT_EQ(lo.vocab, vocab);
      for (int i = 0; i < 2; ++i) {
        worst = std::max(worst, relative_error(ln.row(i), lo.row(i), vocab));
        if (n_seqs[i].pending() > 0 || ids_native[i].size() == 12) continue;
        ids_native[i].push_back(argmax(ln.row(i), vocab));
        ids_onnx[i].push_back(argmax(lo.row(i), vocab));
        n_seqs[i].tokens.push_back(ids_native[i].back());
        o_seqs[i].tokens.push_back(ids_native[i].back());
      }
    }
    EXPECT_LE(worst, 1e-4);
    EXPECT_EQ(ids_onnx, ids_native);
  }
}

// transformers' greedy ids (the goldens of tests/data/model and TinyStories') from the onnx
// runner alone.
TEST(OnnxExport, GreedyIdsEqualTransformersGoldens) {
  for (const std::string& dir : source_dirs()) {
    const std::string golden_path = data_dir() + "/" + fs::path(dir).filename().string() + ".golden.json";
    ASSERT_TRUE(fs::exists(golden_path)) << golden_path;
    for (const auto& p : read_json(golden_path)["prompts"]) {
      const std::vector<int> prompt = p["prompt_ids"].get<std::vector<int>>();
      const std::vector<int> want = p["greedy_ids"].get<std::vector<int>>();
      test_backend() = "onnx";
      std::vector<int> got = greedy_from(dir, prompt, int(want.size()), 5, {.block_size = 4, .num_blocks = 64});
      test_backend() = "native";
      EXPECT_EQ(got, want) << dir;
    }
  }
}

// The whole engine on the exported TinyStories (its tokenizer copied beside model.onnx): greedy
// and seeded sampled requests, two sharing a prefix, in a KV cache of 96 blocks of one token for
// four sequences of up to 64, so steps mix prefill chunks and decodes, hit the prefix cache and
// preempt; the texts equal the native backend's.
TEST(OnnxExport, EngineOutputsEqualTheNativeBackend) {
  const std::string model = shared_dir() + "/models/tinystories-656k";
  const std::vector<std::string> prompts = {"Once upon a time", "Once upon a time, there was a dog",
                                            "Lily and Ben", "One day, a little bird"};
  std::vector<SamplingParams> params(prompts.size());
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].temperature = i % 2 ? 0.8f : 0.0f;
    params[i].seed = int(i);
    params[i].max_tokens = 48;
    params[i].ignore_eos = true;
  }
  auto outputs = [&](const std::string& dir, const std::string& backend) {
    Config c;
    c.backend = backend;
    c.kv_cache_dtype = "f32";
    c.block_size = 1;
    c.kv_cache_bytes = 96 * int64_t{2 * 2 * 64 * 4};  // 96 tokens: 2 layers x K,V x 4 KV heads x 16 x f32
    c.max_model_len = 64;
    c.max_num_batched_tokens = 8;
    LLM llm(dir, c);
    std::map<int64_t, std::vector<int>> ids;  // by request id, in prompt order
    for (size_t i = 0; i < prompts.size(); ++i)
      ids[llm.add_request(llm.tokenizer()->encode(prompts[i]), params[i])];
    while (llm.has_unfinished())
      for (const StepOutput& d : llm.step()) ids[d.request_id].insert(ids[d.request_id].end(), d.new_token_ids.begin(), d.new_token_ids.end());
    std::vector<std::vector<int>> out;
    for (auto& [id, tokens] : ids) out.push_back(tokens);
    return out;
  };
  const auto want = outputs(model, "native");
  EXPECT_EQ(outputs(onnx_export_dir(model), "onnx"), want);
  EXPECT_EQ(want[0].size(), 48u);
}

}  // namespace
}  // namespace nanovllm::test
