// Definitions of the shared engine and sampling flags.
#include "engine_options.h"

#include "nanovllm/llm.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <stdexcept>

namespace nanovllm::tools {

std::string backend_list() {
  std::string s;
  for (const std::string& b : compiled_backends()) s += (s.empty() ? "" : ", ") + b;
  return s;
}

void add_engine_options(CLI::App* cmd, Config& c) {
  // The model positionally (vLLM: `vllm serve MODEL`) or as --model / -m (llama.cpp).
  cmd->add_option("MODEL,--model,-m", c.model, "Checkpoint directory in Hugging Face layout")->required();
  cmd->add_option("--backend", c.backend, "Model runner: " + backend_list())->capture_default_str();
  cmd->add_option_function<std::string>(
      "--device", [&c](const std::string& s) { c.backend_options["device"] = s; },
      "Where the backend runs: cpu, cuda or cuda:N (torch backend; native is cpu only)");
  cmd->add_option_function<std::string>(
      "--dtype", [&c](const std::string& s) { c.backend_options["dtype"] = s; },
      "Compute dtype of the torch backend: auto (f32 on cpu, the checkpoint's on cuda), f32, bf16, f16");
  cmd->add_option("--threads,-t", c.threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--tensor-parallel-size", c.tensor_parallel_size,
                  "Split the model over N MPI ranks: mpirun -np N nanovllm ... --tensor-parallel-size N")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens,--batch-size,-b", c.max_num_batched_tokens,
                  "Token budget of one engine step (prefill chunks + decodes)")->capture_default_str();
  cmd->add_option("--long-prefill-token-threshold", c.long_prefill_token_threshold,
                  "At most this many tokens of one prompt per step (0 = no cap): running streams "
                  "then wait for a step of about this many prefill tokens, not for a whole long prompt")
      ->capture_default_str();
  cmd->add_option("--max-num-seqs,--parallel", c.max_num_seqs, "Sequences in one step at most")->capture_default_str();
  cmd->add_option("--max-model-len,--ctx-size,-c", c.max_model_len,
                  "Context length (0 = the model's max_position_embeddings; more needs "
                  "--allow-long-max-model-len)")->capture_default_str();
  cmd->add_flag("--allow-long-max-model-len", c.allow_long_max_model_len,
                "Allow --max-model-len above the model's trained length (positions it never saw; "
                "also VLLM_ALLOW_LONG_MAX_MODEL_LEN=1)");
  cmd->add_option("--block-size", c.block_size, "Tokens per KV-cache block")->capture_default_str();
  cmd->add_option_function<std::string>(
      "--kv-cache-memory", [&c](const std::string& s) { c.kv_cache_bytes = parse_bytes(s); },
      "KV-cache budget, e.g. 2GiB (default: a fraction of free memory)");
  cmd->add_option("--kv-cache-memory-fraction", c.kv_cache_memory_fraction,
                  "Fraction of available memory for the KV cache when --kv-cache-memory is not given")
      ->capture_default_str();
  cmd->add_flag("--kv-cache-prefault", c.kv_cache_prefault,
                "Touch the whole KV cache at start-up (committed memory, no page faults in steps)");
  cmd->add_option("--kv-cache-dtype", c.kv_cache_dtype, "KV-cache element type: bf16 or f32")
      ->capture_default_str();
  cmd->add_option("--quantization", c.quantization,
                  "Round the weights at load time: int8 (one scale per output row; default: as stored)");
  cmd->add_flag_function(
      "--no-prefix-caching,--no-enable-prefix-caching", [&c](int64_t) { c.enable_prefix_caching = false; },
      "Do not reuse the KV of shared prompt prefixes");
}

void add_sampling_options(CLI::App* cmd, SamplingFlags& f) {
  cmd->add_option("--max-tokens,--n-predict,--predict,-n", f.max_tokens, "New tokens at most (default 64)");
  cmd->add_option("--min-tokens", f.min_tokens, "EOS and stop tokens are masked until this many");
  cmd->add_option("--temperature,--temp", f.temperature, "0 = greedy (default: generation_config.json, else 1)");
  cmd->add_option("--top-p", f.top_p, "Nucleus sampling mass in (0, 1]");
  cmd->add_option("--top-k", f.top_k, "Keep the k most likely tokens (0 = off)");
  cmd->add_option("--min-p", f.min_p, "Drop tokens below min_p times the top probability");
  cmd->add_option("--repetition-penalty,--repeat-penalty", f.repetition_penalty, "> 1 discourages repeating any seen token");
  cmd->add_option("--presence-penalty", f.presence_penalty, "In [-2, 2], per generated token present");
  cmd->add_option("--frequency-penalty", f.frequency_penalty, "In [-2, 2], per occurrence in the output");
  cmd->add_option("--seed,-s", f.seed, "Per-request seed: the same seed gives the same text");
  cmd->add_flag("--ignore-eos", f.ignore_eos, "Keep generating past end-of-sequence tokens");
  cmd->add_option("--stop,--reverse-prompt,-r", f.stop,
                  "Stop string (repeatable); not in the output unless --include-stop-str-in-output")
      ->allow_extra_args(false);
  cmd->add_flag("--include-stop-str-in-output", f.include_stop_str_in_output,
                "Keep the stop string, or the text of the stop / EOS token that ended it, in the output");
  cmd->add_option_function<std::string>(
      "--stop-token-ids", [&f](const std::string& s) { f.stop_token_ids = parse_ids(s); },
      "Comma-separated token ids that end generation");
}

SamplingParams SamplingFlags::apply(SamplingParams p) const {
  if (temperature) p.temperature = *temperature;
  if (top_p) p.top_p = *top_p;
  if (top_k) p.top_k = *top_k;
  if (min_p) p.min_p = *min_p;
  if (repetition_penalty) p.repetition_penalty = *repetition_penalty;
  if (presence_penalty) p.presence_penalty = *presence_penalty;
  if (frequency_penalty) p.frequency_penalty = *frequency_penalty;
  if (max_tokens) p.max_tokens = *max_tokens;
  if (min_tokens) p.min_tokens = *min_tokens;
  if (logprobs) p.logprobs = *logprobs;
  if (seed) p.seed = *seed;
  p.ignore_eos = p.ignore_eos || ignore_eos;
  p.include_stop_str_in_output = p.include_stop_str_in_output || include_stop_str_in_output;
  if (!stop.empty()) p.stop = stop;
  if (!stop_token_ids.empty()) p.stop_token_ids = stop_token_ids;
  return p;
}

int64_t parse_bytes(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    throw std::invalid_argument("not a size: '" + text + "'");
  }
  std::string unit = text.substr(used);
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  double scale = 1;
  if (unit == "" || unit == "b") scale = 1;
  else if (unit == "k" || unit == "kb") scale = 1e3;
  else if (unit == "m" || unit == "mb") scale = 1e6;
  else if (unit == "g" || unit == "gb") scale = 1e9;
  else if (unit == "kib") scale = 1024.0;
  else if (unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "gib") scale = 1024.0 * 1024 * 1024;
  else throw std::invalid_argument("unknown size unit in '" + text + "' (use B, KB, MB, GB, KiB, MiB, GiB)");
  if (!(value >= 0 && value < 1e18)) throw std::invalid_argument("not a usable size: '" + text + "'");
  return static_cast<int64_t>(value * scale);
}

std::vector<int> parse_ids(const std::string& text) {
  std::vector<int> ids;
  if (text.empty()) return ids;  // an empty prompt: BOS alone
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    size_t used = 0;
    int id = 0;
    try {
      id = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size()) throw std::invalid_argument("not a token id: '" + item + "' in '" + text + "'");
    ids.push_back(id);
    start = comma + 1;
  }
  return ids;
}

}  // namespace nanovllm::tools
