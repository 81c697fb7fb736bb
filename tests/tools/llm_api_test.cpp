// The public C++ API's checks at construction: the context limit and what a wrong model path is.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "model/model_test_util.h"
#include "nanovllm/error.h"
#include "nanovllm/llm.h"
#include "tokenizer/chat_template.h"

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

// LLM::apply_chat_template is the model folder's ChatTemplate, rendered with the caller's JSON.
TEST(LlmApi, ApplyChatTemplateRendersTheModelFoldersTemplate) {
  const std::string d = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/llm-api-chat";
  const std::string qwen3 = shared_dir() + "/tokenizers/qwen3";
  fs::remove_all(d);
  fs::create_directories(d);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) {
    fs::copy_file(data_dir() + "/qwen3-f32/" + f, d + "/" + f);
  }
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) fs::copy_file(qwen3 + "/" + f, d + "/" + f);
  LLM llm(d, small_config(0));
  const std::string messages = R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}])";
  const nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(messages);
  const ChatTemplate oracle = ChatTemplate::from_tokenizer_config(qwen3);
  EXPECT_EQ(llm.apply_chat_template(messages), oracle.render(parsed, true));
  EXPECT_EQ(llm.apply_chat_template(messages, false, R"({"enable_thinking": false})"),
            oracle.render(parsed, false, {{"enable_thinking", false}}, nullptr));
  EXPECT_THROW(llm.apply_chat_template("[{"), Error);       // bad JSON
  EXPECT_THROW(llm.apply_chat_template("{}"), Error);       // not an array
  EXPECT_THROW(llm.apply_chat_template(messages, true, "[]"), Error);  // kwargs not an object

  LLM stories(tinystories(), small_config(0));
  try {
    stories.apply_chat_template(messages);
    ADD_FAILURE() << "TinyStories has no chat template";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no chat_template"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nanovllm::test
