// The make-model and convert subcommands of the built `nanovllm` tool (found through $NANOVLLM_BIN).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "model/safetensors.h"
#include "model_test_util.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;

// ctest sets NANOVLLM_BIN; running model_tests by hand without it skips these (visibly).
std::string tool() {
  const char* bin = std::getenv("NANOVLLM_BIN");
  return bin && fs::exists(bin) ? bin : "";
}

std::string out_dir(const std::string& name) {
  std::string d = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/" + name;
  fs::remove_all(d);
  return d;
}

int run(const std::string& args) { return std::system((tool() + " " + args + " > /dev/null").c_str()); }

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(MakeModelTool, SeededHfInitThatLoads) {
  if (tool().empty()) GTEST_SKIP() << "NANOVLLM_BIN not set";
  const std::string config = data_dir() + "/qwen3-f32/config.json";
  const std::string a = out_dir("make-a"), b = out_dir("make-b"), c = out_dir("make-c");
  ASSERT_EQ(run("make-model --config " + config + " --out " + a + " --dtype f32 --seed 7"), 0);
  ASSERT_EQ(run("make-model --config " + config + " --out " + b + " --dtype f32 --seed 7"), 0);
  ASSERT_EQ(run("make-model --config " + config + " --out " + c + " --dtype f32 --seed 8"), 0);
  EXPECT_EQ(bytes_of(a + "/model.safetensors"), bytes_of(b + "/model.safetensors"));
  EXPECT_NE(bytes_of(a + "/model.safetensors"), bytes_of(c + "/model.safetensors"));
  // Hugging Face's init: N(0, initializer_range = 0.1) matrices, norms 1.
  SafetensorsFile f(a + "/model.safetensors");
  const TensorInfo* w = f.find("model.layers.1.mlp.gate_proj.weight");
  ASSERT_NE(w, nullptr);
  const float* x = static_cast<const float*>(w->data);
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < w->numel(); ++i) sum += x[i], sq += double(x[i]) * x[i];
  const double mean = sum / w->numel(), sd = std::sqrt(sq / w->numel() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.005);
  EXPECT_NEAR(sd, 0.1, 0.003);
  EXPECT_EQ(static_cast<const float*>(f.find("model.layers.0.self_attn.q_norm.weight")->data)[5], 1.0f);
  // It loads and runs, in both dtypes.
  ASSERT_EQ(run("make-model --config " + config + " --out " + c + " --dtype bf16 --seed 8"), 0);
  for (const std::string& dir : {a, c}) {
    std::vector<int> ids = greedy_from(dir, {1, 2, 3}, 4, 0, {});
    EXPECT_EQ(ids.size(), 4u);
  }
}

// `convert llama2c` writes a checkpoint and a tokenizer.json; our tokenizer reads it and
// decodes transformers' greedy ids of that checkpoint into the story of ../shared/README.md.
TEST(ConvertTool, Stories260KTellsTheStory) {
  if (tool().empty()) GTEST_SKIP() << "NANOVLLM_BIN not set";
  const std::string out = out_dir("convert"), src = shared_dir() + "/models/stories260k";
  ASSERT_EQ(run("convert llama2c --checkpoint " + src + "/stories260K.bin --tokenizer " + src +
                "/tok512.model --out " + out), 0);
  const nlohmann::json golden = read_json(data_dir() + "/stories260k.golden.json");
  std::vector<int> want = golden["greedy_ids"].get<std::vector<int>>();
  EXPECT_EQ(greedy_from(out, {1}, static_cast<int>(want.size()), 0, {.kv_dtype = "f32"}), want);
  auto tok = HfTokenizer::from_dir(out);
  EXPECT_EQ(tok->decode(want).rfind(
                "Once upon a time, there was a little girl named Lily. She loved to play outside in "
                "the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.", 0),
            0u) << tok->decode(want);
  EXPECT_EQ(tok->encode("Once upon a time"), (std::vector<int>{1, 403, 407, 261, 378}));
}

// `generate --quantization int8` rounds the trained model's weights at load time and still
// tells its story; an unknown scheme is refused with the allowed one named.
TEST(GenerateTool, Int8WeightsTellTheStory) {
  if (tool().empty()) GTEST_SKIP() << "NANOVLLM_BIN not set";
  const std::string out = out_dir("int8") + ".txt", model = shared_dir() + "/models/tinystories-656k";
  ASSERT_EQ(std::system((tool() + " generate --model " + model + " --quantization int8 --temperature 0 "
                         "--max-tokens 40 --prompt '' -q > " + out).c_str()), 0);
  EXPECT_EQ(bytes_of(out).rfind("Once upon a time, there was a little girl named Lily. She had a toy car "
                                "that she loved very much. One day, she went to the park", 0), 0u)
      << bytes_of(out);
  EXPECT_NE(run("generate --model " + model + " --quantization int4 --prompt '' -q 2>/dev/null"), 0);
}

// `make demo`. TinyStories ends a story by writing "<|end_story|>" as text (four ordinary
// tokens), then its EOS token, a special token of the same name. The EOS token adds no text
// (vLLM's rule for the token that ends a request): the marker is printed once, as the model
// wrote it, and the demo's stop string cuts it. --include-stop-str-in-output keeps the text of
// a stop token.
TEST(GenerateTool, DemoStoryEndsWithoutTheEosText) {
  if (tool().empty()) GTEST_SKIP() << "NANOVLLM_BIN not set";
  const std::string out = out_dir("demo") + ".txt", model = shared_dir() + "/models/tinystories-656k";
  fs::create_directories(fs::path(out).parent_path());
  const std::string demo = tool() + " generate --model " + model + " --prompt 'Once upon a time' --max-tokens 200 "
                           "--temperature 0 -q";
  ASSERT_EQ(std::system((demo + " > " + out).c_str()), 0);
  std::string story = bytes_of(out);
  EXPECT_EQ(story.rfind("Once upon a time", 0), 0u) << story;
  ASSERT_GT(story.size(), 14u);
  EXPECT_EQ(story.substr(story.size() - 14), "<|end_story|>\n") << story;
  EXPECT_EQ(story.find("<|end_story|>"), story.size() - 14) << "printed twice: " << story;
  ASSERT_EQ(std::system((demo + " --stop '<|end_story|>' > " + out).c_str()), 0);
  EXPECT_EQ(bytes_of(out), story.substr(0, story.size() - 14) + "\n");
  const int token = *HfTokenizer::from_dir(model)->token_to_id("little▁girl▁named▁");
  ASSERT_EQ(std::system((tool() + " generate --model " + model + " --prompt '' --max-tokens 40 --temperature 0 " +
                         "--stop-token-ids " + std::to_string(token) + " --include-stop-str-in-output -q > " + out).c_str()), 0);
  EXPECT_EQ(bytes_of(out), "Once upon a time, there was a little girl named \n");
}

}  // namespace
}  // namespace nanovllm::test
