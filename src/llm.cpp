// Wires a backend and the tokenizer to an LLMEngine: the one place that knows them all.
#include "nanovllm/llm.h"

#include <filesystem>

#include "nanovllm/error.h"
#include "engine/llm_engine.h"
#include "model/native_runner.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {
namespace {

std::unique_ptr<ModelRunner> make_runner(const std::string& model_dir, const Config& config) {
  if (config.backend == "native") {
    NativeRunnerOptions opts;
    opts.kv_cache_dtype = config.kv_cache_dtype;
    opts.threads = config.threads;
    opts.prefault_kv_cache = config.kv_cache_prefault;
    opts.quantization = config.quantization;
    return make_native_runner(model_dir, opts);
  }
  throw Error("unknown backend '" + config.backend + "' (this build has: native)");
}

std::shared_ptr<const Tokenizer> load_tokenizer(const std::string& model_dir) {
  if (!std::filesystem::exists(std::filesystem::path(model_dir) / "tokenizer.json")) return nullptr;
  return HfTokenizer::from_dir(model_dir);
}

}  // namespace

LLM::LLM(const std::string& model_dir, Config config) {
  config.model = model_dir;
  config.validate();
  if (!std::filesystem::is_directory(model_dir)) throw Error("model directory not found: " + model_dir);
  tokenizer_ = load_tokenizer(model_dir);
  engine_ = std::make_unique<LLMEngine>(config, make_runner(model_dir, config), tokenizer_);
}

LLM::~LLM() = default;

std::vector<RequestOutput> LLM::generate(const std::vector<std::string>& prompts,
                                         const SamplingParams& params, bool show_progress) {
  if (!tokenizer_) throw Error("this checkpoint has no tokenizer.json: pass token ids");
  std::vector<std::vector<int>> ids;
  ids.reserve(prompts.size());
  for (const std::string& p : prompts) ids.push_back(tokenizer_->encode(p, true));
  return generate(ids, params, show_progress);
}

std::vector<RequestOutput> LLM::generate(const std::vector<std::vector<int>>& prompt_token_ids,
                                         const SamplingParams& params, bool show_progress) {
  return engine_->generate(prompt_token_ids, {params}, show_progress);
}

}  // namespace nanovllm
