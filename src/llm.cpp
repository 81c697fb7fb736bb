// Wires a backend and the tokenizer to an LLMEngine: the one place that knows them all.
#include "nanovllm/llm.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "llm_internal.h"
#include "backends/native/native_runner.h"
#include "backends/registry.h"
#include "common/json.h"
#include "constraint/llguidance_compiler.h"
#include "model/gguf_model.h"
#include "nanovllm/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kWhatIsNeeded =
    "nanovllm needs a Hugging Face checkpoint folder: config.json + model.safetensors (or a sharded "
    "model.safetensors.index.json) + tokenizer.json, e.g. from "
    "`huggingface-cli download ORG/MODEL --local-dir DIR`; or a llama.cpp GGUF file";

std::string first_gguf_in(const fs::path& dir) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && is_gguf_file(e.path().string())) return e.path().filename().string();
  }
  return "";
}

// Says what a path that is not a usable checkpoint folder is, and what to pass instead, before
// any loader reads it (their messages name one missing file, not the mistake behind it).
void check_model_path(const std::string& model) {
  const fs::path p(model);
  std::error_code ec;
  if (!fs::exists(p, ec)) throw Error("model path does not exist: " + model + "; " + kWhatIsNeeded);
  if (!fs::is_directory(p, ec)) {
    if (is_gguf_file(model)) return;  // its reader names whatever is wrong with it
    if (p.filename() == "config.json") throw Error(model + " is a file: pass the folder that holds it");
    throw Error(model + " is a file, not a checkpoint folder; " + kWhatIsNeeded);
  }
  if (!fs::exists(p / "config.json")) {
    const std::string gguf = first_gguf_in(p);
    if (!gguf.empty()) {
      throw Error(model + " is a llama.cpp model folder (it holds " + gguf + ", no config.json): pass the file, --model " +
                  (p / gguf).string());
    }
    throw Error(model + " has no config.json, so it is not a Hugging Face checkpoint folder; " + kWhatIsNeeded);
  }
  // An ONNX export (make export-onnx) holds model.onnx instead; the onnx backend reads it.
  if (fs::exists(p / "model.onnx")) return;
  if (!fs::exists(p / "model.safetensors") && !fs::exists(p / "model.safetensors.index.json")) {
    const bool torch_bin = fs::exists(p / "pytorch_model.bin") || fs::exists(p / "pytorch_model.bin.index.json");
    throw Error(model + " has config.json but no model.safetensors or model.safetensors.index.json" +
                (torch_bin ? std::string(" (PyTorch .bin weights are not supported: download the safetensors "
                                         "files, or convert with transformers' save_pretrained)")
                           : std::string("; the weights must be in safetensors format")));
  }
}

bool env_allows_long_max_model_len() {
  const char* v = std::getenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN");
  return v && (std::string(v) == "1" || std::string(v) == "true");
}

// vLLM's rule: a context longer than the model was trained for must be asked for explicitly,
// because positions beyond it give garbage (RoPE was never trained there).
void check_max_model_len(const Config& config, const ModelInfo& info) {
  const int trained = info.max_position_embeddings;
  if (config.max_model_len <= trained || trained <= 0) return;
  const std::string numbers = "max_model_len " + std::to_string(config.max_model_len) +
                              " is above the model's max_position_embeddings " + std::to_string(trained);
  if (!config.allow_long_max_model_len && !env_allows_long_max_model_len()) {
    throw Error(numbers + " (config.json). Positions beyond it were never trained and give garbage; to use "
                "them anyway, pass --allow-long-max-model-len (Config::allow_long_max_model_len) or set "
                "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1");
  }
  std::fprintf(stderr, "nanovllm: warning: %s; positions beyond it were never trained and may give garbage\n",
               numbers.c_str());
}

internal::TpRunnerFactory tp_runner_factory = nullptr;

// tensor_parallel_size > 1 splits the native runner over MPI ranks: the nanovllm command
// registers that factory, so that the library itself needs no MPI.
std::unique_ptr<ModelRunner> make_runner(const std::string& model_dir, const Config& config) {
  if (config.tensor_parallel_size <= 1) return find_backend(config.backend).make(model_dir, config);
  if (config.backend != "native") throw Error("tensor_parallel_size > 1 runs on the native backend only");
  if (!tp_runner_factory)
    throw Error("tensor_parallel_size > 1 needs the nanovllm command built with MPI (cmake -DNANOVLLM_WITH_MPI=ON)");
  return tp_runner_factory(model_dir, native_options(config), config.tensor_parallel_size);
}

std::shared_ptr<const HfTokenizer> load_tokenizer(const std::string& model_dir) {
  if (!is_gguf_file(model_dir) && !fs::exists(fs::path(model_dir) / "tokenizer.json")) return nullptr;
  return HfTokenizer::from_dir(model_dir);
}

}  // namespace

void internal::set_tp_runner_factory(TpRunnerFactory factory) { tp_runner_factory = factory; }

LLM::LLM(const std::string& model_dir, Config config) {
  config.model = model_dir;
  config.validate();
  check_model_path(model_dir);
  std::unique_ptr<ModelRunner> runner = make_runner(model_dir, config);
  check_max_model_len(config, runner->info());
  std::shared_ptr<const HfTokenizer> tokenizer = load_tokenizer(model_dir);
  tokenizer_ = tokenizer;
  const int vocab_size = runner->info().vocab_size;
  engine_ = std::make_unique<LLMEngine>(config, std::move(runner), tokenizer_);
  // Structured outputs need the tokens' bytes; without a tokenizer such requests are refused.
  if (tokenizer && !engine_->eos_ids().empty()) {
    engine_->set_constraint_compiler(make_llguidance_compiler(tokenizer, vocab_size, engine_->eos_ids()));
  }
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

int64_t LLM::add_request(std::vector<int> prompt_token_ids, const SamplingParams& params) {
  return engine_->add_request(std::move(prompt_token_ids), params);
}

std::vector<StepOutput> LLM::step() { return engine_->step(); }
bool LLM::abort(int64_t request_id) { return engine_->abort(request_id); }
bool LLM::has_unfinished() const { return engine_->has_unfinished(); }
SamplingParams LLM::default_sampling_params() const { return engine_->default_sampling_params(); }
int LLM::max_model_len() const { return engine_->max_model_len(); }
int LLM::vocab_size() const { return engine_->model_info().vocab_size; }
std::optional<int> LLM::bos_token_id() const { return engine_->model_info().bos_token_id; }
const Config& LLM::config() const { return engine_->config(); }

const ChatTemplate& LLM::chat_template() const {
  std::call_once(chat_template_once_, [this] {
    chat_template_ = std::make_unique<const ChatTemplate>(ChatTemplate::from_tokenizer_config(config().model));
  });
  return *chat_template_;
}

std::string LLM::apply_chat_template(const std::string& messages_json, bool add_generation_prompt,
                                     const std::string& kwargs_json, const std::string& tools_json) const {
  using Json = nlohmann::ordered_json;  // key order stays as written (visible through tojson)
  const Json messages = parse_json<Json>(messages_json, "the chat messages");
  const Json kwargs = parse_json<Json>(kwargs_json, "the chat template arguments");
  const Json tools = parse_json<Json>(tools_json, "the tools");
  return chat_template().render(messages, add_generation_prompt, kwargs, tools);
}

LLMEngine& internal::engine(LLM& llm) { return *llm.engine_; }

}  // namespace nanovllm
