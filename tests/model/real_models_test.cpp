// The real checkpoints in ../shared/models tell their known stories, token for token as transformers.
#include <gtest/gtest.h>

#include <filesystem>

#include "model/llama2c.h"
#include "model_test_util.h"

namespace nanovllm::test {
namespace {

const std::string kTinyStories = shared_dir() + "/models/tinystories-656k";

std::vector<int> ids_of(const nlohmann::json& j) { return j.get<std::vector<int>>(); }

// Greedy continuations from BOS and from three prompts equal transformers' (golden made by
// scripts/gen_model_goldens.py) with an f32 KV cache; the BOS one is the story that
// ../shared/README.md quotes.
TEST(TinyStories, GreedyMatchesTransformers) {
  nlohmann::json golden = read_json(data_dir() + "/tinystories-656k.golden.json");
  ASSERT_EQ(golden["runs"].size(), 4u);
  EXPECT_EQ(golden["runs"][0]["text"].get<std::string>().rfind(
                "Once upon a time, there was a little girl named Lily. She had a toy car that she "
                "loved very much. One day, she went to the park", 0), 0u);
  for (const auto& run : golden["runs"]) {
    std::vector<int> want = ids_of(run["greedy_ids"]);
    RunnerSetup s{.block_size = 16, .num_blocks = 16, .kv_dtype = "f32"};
    EXPECT_EQ(greedy_from(kTinyStories, ids_of(run["prompt_ids"]), static_cast<int>(want.size()), 0, s), want)
        << "prompt '" << run["prompt"].get<std::string>() << "'";
  }
}

// The default bf16 KV cache tells the same story: a trained model's greedy margins are often
// below what bf16 rounding of K/V can move (the golden records them), so later tokens may
// legitimately differ, but the README's sentence must come out token for token.
TEST(TinyStories, Bf16KVCacheTellsTheStory) {
  nlohmann::json run = read_json(data_dir() + "/tinystories-656k.golden.json")["runs"][0];
  const int n = run["story_tokens"].get<int>();
  std::vector<int> want = ids_of(run["greedy_ids"]);
  want.resize(n);
  RunnerSetup s{.block_size = 16, .num_blocks = 16, .kv_dtype = "bf16", .prefault = true};
  EXPECT_EQ(greedy_from(kTinyStories, ids_of(run["prompt_ids"]), n, 0, s), want);
}

// With its weights rounded to int8 at load time (--quantization int8) the trained model still
// tells the README's sentence token for token.
TEST(TinyStories, Int8WeightsTellTheStory) {
  nlohmann::json run = read_json(data_dir() + "/tinystories-656k.golden.json")["runs"][0];
  const int n = run["story_tokens"].get<int>();
  std::vector<int> want = ids_of(run["greedy_ids"]);
  want.resize(n);
  RunnerSetup s{.block_size = 16, .num_blocks = 16, .kv_dtype = "f32", .quantization = "int8"};
  EXPECT_EQ(greedy_from(kTinyStories, ids_of(run["prompt_ids"]), n, 0, s), want);
}

TEST(TinyStories, ModelInfo) {
  auto r = make_native_runner(kTinyStories);
  const ModelInfo& info = r->info();
  EXPECT_EQ(info.architecture, "LlamaForCausalLM");
  EXPECT_EQ(info.vocab_size, 2048);
  EXPECT_EQ(info.max_position_embeddings, 512);
  EXPECT_EQ(info.bos_token_id, 1);
  EXPECT_EQ(info.eos_token_ids, std::vector<int>{2});
  // Only lm_head.weight is stored (embed_tokens aliases it): 2048*128 + 2 layers + norm, f32.
  EXPECT_EQ(info.weight_bytes, static_cast<int64_t>(std::filesystem::file_size(kTinyStories + "/model.safetensors")) - 8 - 2160);
  EXPECT_EQ(r->kv_block_bytes(16), 2LL * 2 * 16 * 64 * 2);  // K+V, 2 layers, 16 tokens, 4x16 dims, bf16
}

// Our converter's output runs to transformers' greedy ids on the same converted checkpoint,
// which tell the story ../shared/README.md gives for llama2.c's own `run -t 0`.
TEST(Stories260K, ConvertedCheckpointMatchesTransformers) {
  const std::string out = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/stories260k";
  std::filesystem::remove_all(out);
  convert_llama2c_checkpoint(shared_dir() + "/models/stories260k/stories260K.bin", out);
  nlohmann::json golden = read_json(data_dir() + "/stories260k.golden.json");
  EXPECT_EQ(golden["text"].get<std::string>().rfind(
                "Once upon a time, there was a little girl named Lily. She loved to play outside in "
                "the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.", 0),
            0u);
  std::vector<int> want = ids_of(golden["greedy_ids"]);
  RunnerSetup s{.block_size = 16, .num_blocks = 16, .kv_dtype = "f32"};
  EXPECT_EQ(greedy_from(out, ids_of(golden["prompt_ids"]), static_cast<int>(want.size()), 7, s), want);
}

}  // namespace
}  // namespace nanovllm::test
