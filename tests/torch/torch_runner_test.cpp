// The LibTorch backend against the native runner (our reference on the CPU) and the goldens
// transformers wrote: same logits (f32 within 1e-4 of each row's range), same greedy ids, on
// every test checkpoint and the real TinyStories models; the engine on top gives the same
// outputs whatever the chunking, block size, batch mix and prefix caching.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "backends/registry.h"
#include "model/gguf_convert.h"
#include "model/llama2c.h"
#include "model/model_test_util.h"
#include "nanovllm/error.h"
#include "nanovllm/llm.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;

// Every checkpoint of tests/data/model, TinyStories-656K, and stories260K converted from llama2.c.
std::vector<std::string> model_dirs() {
  std::vector<std::string> dirs = test_checkpoint_dirs();
  const std::string stories = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/torch-stories260k";
  if (!fs::exists(stories + "/config.json"))
    convert_llama2c_checkpoint(shared_dir() + "/models/stories260k/stories260K.bin", stories);
  dirs.push_back(stories);
  return dirs;
}

// A prompt prefilled in chunks of 3 (every chunk sampled), then 12 decode steps that feed both
// runners the native runner's greedy token: every logits row of both is compared.
void expect_torch_matches_native(const std::string& model) {
  SCOPED_TRACE(model);
  const int bs = 4;
  auto native = runner("native", model, bs);
  auto torch = runner("torch", model, bs);
  ASSERT_EQ(torch->info().vocab_size, native->info().vocab_size);
  const int vocab = native->info().vocab_size;
  std::vector<int> prompt{1, 5, 9, 2, 7, 3, 11};
  TestSeq a(prompt, 0, 48, bs), b(prompt, 0, 48, bs);
  std::vector<int> ids_native, ids_torch;
  double worst = 0;
  while (ids_native.size() < 12) {
    const int n = std::min(3, a.pending());
    Logits ln = run_step(*native, bs, {{&a, n, true}});
    Logits lt = run_step(*torch, bs, {{&b, n, true}});
    ASSERT_EQ(lt.rows, 1);
    ASSERT_EQ(lt.vocab, vocab);
    worst = std::max(worst, relative_error(ln.row(0), lt.row(0), vocab));
    if (a.pending() > 0) continue;
    ids_native.push_back(argmax(ln.row(0), vocab));
    ids_torch.push_back(argmax(lt.row(0), vocab));
    a.tokens.push_back(ids_native.back());
    b.tokens.push_back(ids_native.back());
  }
  EXPECT_LE(worst, 1e-4);
  EXPECT_EQ(ids_torch, ids_native);
}

// The native runner under its scalar kernel table, whose matmul keeps f32 activations for
// every weight dtype (AVX-512 BF16 rounds them to bf16 for BF16 weights, as llama.cpp does).
struct ScalarNative {
  ScalarNative() { EXPECT_TRUE(kernels::force_isa("scalar")); }
  ~ScalarNative() { kernels::force_isa(best_isa()); }
};

TEST(TorchRunner, LogitsAndGreedyIdsMatchTheNativeRunnerOnEveryModel) {
  ScalarNative scalar;
  const std::vector<std::string> dirs = model_dirs();
  ASSERT_EQ(dirs.size(), 8u);  // 6 test checkpoints + 2 real models
  for (const std::string& dir : dirs) expect_torch_matches_native(dir);
}

// GGUF files through our GGUF reader, their quantized tensors dequantized by the reference
// decoder: the scalar native runner reads the same blocks with f32 activations, so logits agree
// within 1e-4 of the range and greedy ids exactly. Each architecture's test checkpoint written
// as llama.cpp's converter does with --outtype q8_0 (llama: q/k rows permuted), and the demo's
// SmolLM2-135M-Instruct (Q4_1 matrices, Q8_0 embeddings).
TEST(TorchRunner, GgufFilesDequantizedMatchTheNativeRunner) {
  ScalarNative scalar;
  const std::string tmp = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp";
  fs::create_directories(tmp);
  GgufConvertOptions q8_0;
  q8_0.q8_0 = true;
  for (const char* name : {"llama-f32", "llama-f16", "mistral-f32", "qwen2-f32", "qwen3-f32", "qwen3-bf16"})
    expect_torch_matches_native(convert_to_gguf(name, tmp + "/torch-" + name + "-q8_0.gguf", q8_0));
  const std::string demo = demo_model();
  ASSERT_TRUE(fs::exists(demo)) << "scripts/fetch-demo-model.sh gave '" << demo << "'";
  expect_torch_matches_native(demo);
}

// transformers' greedy ids (the goldens of tests/data/model) from the torch runner alone.
TEST(TorchRunner, GreedyIdsEqualTransformersGoldens) {
  for (const auto& e : fs::directory_iterator(data_dir())) {
    if (!e.is_directory()) continue;
    const std::string golden_path = e.path().string() + ".golden.json";
    ASSERT_TRUE(fs::exists(golden_path)) << golden_path;
    for (const auto& p : read_json(golden_path)["prompts"]) {
      const std::vector<int> prompt = p["prompt_ids"].get<std::vector<int>>();
      const std::vector<int> want = p["greedy_ids"].get<std::vector<int>>();
      test_backend() = "torch";
      std::vector<int> got = greedy_from(e.path().string(), prompt, static_cast<int>(want.size()), 5,
                                         {.block_size = 4, .num_blocks = 64, .kv_dtype = "f32"});
      test_backend() = "native";
      EXPECT_EQ(got, want) << e.path();
    }
  }
}

// The whole engine on the torch backend: several prompts, two of them sharing a prefix, under
// every scheduling shape; the outputs equal the native backend's under the default shape.
TEST(TorchRunner, EngineOutputsDoNotDependOnStepShape) {
  const std::string model = shared_dir() + "/models/tinystories-656k";
  const std::vector<std::string> prompts = {"Once upon a time", "The cat sat on the", "Once upon a time, there was",
                                            "Tom and Sue went to the park. They"};
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 24;
  greedy.ignore_eos = true;
  auto texts = [&](Config c) {
    c.kv_cache_dtype = "f32";
    c.kv_cache_bytes = 16 << 20;
    LLM llm(model, c);
    std::vector<std::string> out;
    for (const RequestOutput& r : llm.generate(prompts, greedy)) out.push_back(r.text);
    return out;
  };
  const std::vector<std::string> want = texts(Config{});
  struct Shape {
    int block_size, max_batched;
    bool prefix_caching;
  };
  for (const Shape& s : {Shape{16, 2048, true}, Shape{1, 2048, true}, Shape{4, 5, true}, Shape{16, 3, false},
                         Shape{8, 7, true}}) {
    Config c;
    c.backend = "torch";
    c.block_size = s.block_size;
    c.max_num_batched_tokens = s.max_batched;
    c.max_num_seqs = 3;  // fewer than the prompts: one joins mid-way, steps mix prefill and decode
    c.enable_prefix_caching = s.prefix_caching;
    EXPECT_EQ(texts(c), want) << "block " << s.block_size << " budget " << s.max_batched << " prefix cache "
                              << s.prefix_caching;
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TorchRunner, BadDeviceAndDtypeAreErrorsNamingThem) {
  const std::string dir = data_dir() + "/llama-f32";
  EXPECT_NE(error_of([&] { make_torch_runner(dir, {.device = "tpu"}); }).find("'tpu'"), std::string::npos);
  EXPECT_NE(error_of([&] { make_torch_runner(dir, {.dtype = "f8"}); }).find("'f8'"), std::string::npos);
  EXPECT_NE(error_of([&] { make_torch_runner(dir, {.kv_cache_dtype = "f16"}); }).find("'f16'"), std::string::npos);
  // This machine has no GPU (CI's neither): asking for one says so instead of crashing.
  EXPECT_NE(error_of([&] { make_torch_runner(dir, {.device = "cuda"}); }).find("cuda"), std::string::npos);
}

TEST(BackendRegistry, ListsTheCompiledBackendsAndRefusesOthers) {
#ifdef NANOVLLM_HAVE_ONNX  // make build-all has the onnx backend too
  EXPECT_EQ(compiled_backends(), (std::vector<std::string>{"native", "torch", "onnx"}));
#else
  EXPECT_EQ(compiled_backends(), (std::vector<std::string>{"native", "torch"}));
#endif
  EXPECT_NE(error_of([] { find_backend("tensorrt"); }).find("this build has: native, torch"), std::string::npos);
  Config c;
  c.backend_options["device"] = "cuda";
  EXPECT_NE(error_of([&] { find_backend("native").make(data_dir() + "/llama-f32", c); }).find("CPU only"),
            std::string::npos);
  c.quantization = "int8";
  EXPECT_NE(error_of([&] { find_backend("torch").make(data_dir() + "/llama-f32", c); }).find("no --quantization int8"),
            std::string::npos);
  c.quantization = "";
  c.backend_options = {{"colour", "red"}};
  EXPECT_NE(error_of([&] { find_backend("torch").make(data_dir() + "/llama-f32", c); }).find("no option 'colour' (it has: device, dtype)"),
            std::string::npos);
}

}  // namespace
}  // namespace nanovllm::test
