// The public C++ API's checks at construction: the context limit and what a wrong model path is.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/model_test_util.h"
#include "nanovllm/error.h"
#include "nanovllm/llm.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;

std::string tinystories() { return shared_dir() + "/models/tinystories-656k"; }

std::string error_of(const std::string& model, Config config = {}) {
  try {
    LLM llm(model, config);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Config small_config(int max_model_len) {
  Config c;
  c.max_model_len = max_model_len;
  c.kv_cache_bytes = 8 << 20;
  return c;
}

TEST(LlmApi, MaxModelLenAboveTheTrainedLengthNamesBothNumbers) {
  ASSERT_TRUE(fs::exists(tinystories() + "/config.json")) << "no TinyStories-656K under " << shared_dir();
  unsetenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN");
  const std::string e = error_of(tinystories(), small_config(1024));
  EXPECT_NE(e.find("max_model_len 1024"), std::string::npos) << e;
  EXPECT_NE(e.find("max_position_embeddings 512"), std::string::npos) << e;
  EXPECT_EQ(error_of(tinystories(), small_config(512)), "");
  Config allowed = small_config(1024);
  allowed.allow_long_max_model_len = true;
  LLM llm(tinystories(), allowed);
  EXPECT_EQ(llm.max_model_len(), 1024);
  setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1", 1);
  EXPECT_EQ(error_of(tinystories(), small_config(1024)), "");
  unsetenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN");
}

TEST(LlmApi, WrongModelPathsSayWhatTheyAreAndWhatIsNeeded) {
  const std::string d = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/llm-api-paths";
  fs::remove_all(d);
  fs::create_directories(d + "/gguf-folder");
  fs::create_directories(d + "/no-weights");
  fs::create_directories(d + "/torch-bin");
  fs::create_directories(d + "/empty");
  std::ofstream(d + "/gguf-folder/model-Q4_K_M.gguf") << "GGUF";
  std::ofstream(d + "/renamed.bin") << "GGUF....";  // GGUF by its magic, whatever its name
  std::ofstream(d + "/no-weights/config.json") << "{}";
  std::ofstream(d + "/torch-bin/config.json") << "{}";
  std::ofstream(d + "/torch-bin/pytorch_model.bin") << "x";

  EXPECT_NE(error_of(d + "/missing").find("model path does not exist"), std::string::npos);
  // A GGUF file (by its magic, whatever its name) goes to the GGUF reader, which names its flaw.
  EXPECT_NE(error_of(d + "/renamed.bin").find("renamed.bin: GGUF version"), std::string::npos)
      << error_of(d + "/renamed.bin");
  const std::string folder = error_of(d + "/gguf-folder");
  EXPECT_NE(folder.find("llama.cpp model folder (it holds model-Q4_K_M.gguf"), std::string::npos) << folder;
  EXPECT_NE(folder.find("pass the file, --model " + d + "/gguf-folder/model-Q4_K_M.gguf"), std::string::npos) << folder;
  EXPECT_NE(error_of(d + "/empty").find("has no config.json"), std::string::npos);
  EXPECT_NE(error_of(d + "/no-weights").find("has config.json but no model.safetensors"), std::string::npos);
  EXPECT_NE(error_of(d + "/torch-bin").find("PyTorch .bin weights are not supported"), std::string::npos);
  EXPECT_NE(error_of(tinystories() + "/config.json").find("pass the folder that holds it"), std::string::npos);
}

}  // namespace
}  // namespace nanovllm::test
