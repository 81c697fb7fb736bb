// The C++ API in nano-vllm's shape: LLM(model_dir).generate(prompts, SamplingParams), plus the
// step-at-a-time calls that streaming front ends (the CLI, the server) are built on. Everything
// it names is declared in include/nanovllm/, so an embedder needs only the installed headers.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "nanovllm/config.h"
#include "nanovllm/outputs.h"
#include "nanovllm/sampling_params.h"
#include "nanovllm/tokenizer.h"

namespace nanovllm {

class LLMEngine;
class ChatTemplate;
class LLM;

// Names of the backends (model runners) compiled into this build, "native" first; one of them
// goes in Config::backend.
std::vector<std::string> compiled_backends();

namespace internal {
// The engine behind an LLM, for this project's own server (src/llm_internal.h); not public API.
LLMEngine& engine(LLM& llm);
}  // namespace internal

class LLM {
 public:
  // Loads a Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json)
  // with config.backend; throws nanovllm::Error when the checkpoint cannot be used (the
  // message says what the path is and what is needed), or when config.max_model_len exceeds
  // the model's max_position_embeddings without config.allow_long_max_model_len.
  explicit LLM(const std::string& model_dir, Config config = {});
  ~LLM();
  LLM(const LLM&) = delete;
  LLM& operator=(const LLM&) = delete;

  // One output per prompt, in prompt order. Text prompts are encoded with the model's
  // tokenizer (with its BOS/EOS rules); an empty prompt means BOS alone. A progress bar goes
  // to stderr when show_progress is set and stderr is a terminal.
  std::vector<RequestOutput> generate(const std::vector<std::string>& prompts,
                                      const SamplingParams& params, bool show_progress = true);
  std::vector<RequestOutput> generate(const std::vector<std::vector<int>>& prompt_token_ids,
                                      const SamplingParams& params, bool show_progress = true);

  // Streaming: queue requests, then call step() until has_unfinished() is false. Each step
  // returns a delta per request that produced something. add_request throws nanovllm::Error
  // on bad input (nothing is queued then); an empty prompt starts from BOS.
  int64_t add_request(std::vector<int> prompt_token_ids, const SamplingParams& params);
  std::vector<StepOutput> step();
  bool abort(int64_t request_id);  // false when the id is unknown
  bool has_unfinished() const;

  // SamplingParams{} overlaid with the model's generation_config.json defaults.
  SamplingParams default_sampling_params() const;
  // The context served: the configured or the model's length, shrunk to the KV-cache pool.
  int max_model_len() const;
  int vocab_size() const;  // rows of the logits
  std::optional<int> bos_token_id() const;
  const Config& config() const;

  // Null when the checkpoint has no tokenizer.json (then only token-id prompts work).
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }

  // The model's chat template (tokenizer_config.json / chat_template.jinja) rendered on
  // messages_json, a JSON array of {"role", "content", ...} objects, as transformers'
  // apply_chat_template(tokenize=False) does. kwargs_json: an object of extra template
  // variables ({"enable_thinking": false}); tools_json: an array of tools, or null. JSON text
  // keeps the header free of a JSON library. Throws nanovllm::Error when the model has no chat
  // template, the JSON is bad, or the template fails (its raise_exception() included).
  std::string apply_chat_template(const std::string& messages_json, bool add_generation_prompt = true,
                                  const std::string& kwargs_json = "{}", const std::string& tools_json = "null") const;

 private:
  friend LLMEngine& internal::engine(LLM& llm);

  const ChatTemplate& chat_template() const;

  std::shared_ptr<const Tokenizer> tokenizer_;
  std::unique_ptr<LLMEngine> engine_;
  // Loaded on the first apply_chat_template (a model may have none); once_flag retries a load
  // that threw, so each call without a template reports why.
  mutable std::once_flag chat_template_once_;
  mutable std::unique_ptr<const ChatTemplate> chat_template_;
};

}  // namespace nanovllm
