// The C++ API in nano-vllm's shape: LLM(model_dir).generate(prompts, SamplingParams).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nanovllm/config.h"
#include "nanovllm/outputs.h"
#include "nanovllm/sampling_params.h"

namespace nanovllm {

class LLMEngine;
class Tokenizer;

class LLM {
 public:
  // Loads a Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json)
  // with config.backend; throws nanovllm::Error when the checkpoint cannot be used.
  explicit LLM(const std::string& model_dir, Config config = {});
  ~LLM();
  LLM(const LLM&) = delete;
  LLM& operator=(const LLM&) = delete;

  // One output per prompt, in prompt order. Text prompts are encoded with the model's
  // tokenizer (with its BOS/EOS rules); an empty prompt means BOS alone.
  std::vector<RequestOutput> generate(const std::vector<std::string>& prompts,
                                      const SamplingParams& params, bool show_progress = true);
  std::vector<RequestOutput> generate(const std::vector<std::vector<int>>& prompt_token_ids,
                                      const SamplingParams& params, bool show_progress = true);

  LLMEngine& engine() { return *engine_; }
  // Null when the checkpoint has no tokenizer.json (then only token-id prompts work).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::unique_ptr<LLMEngine> engine_;
};

}  // namespace nanovllm
