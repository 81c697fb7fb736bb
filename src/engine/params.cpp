// Validation of SamplingParams and Config, and the small helpers of the output types.
#include <cmath>
#include <stdexcept>
#include <string>

#include "nanovllm/config.h"
#include "nanovllm/outputs.h"
#include "nanovllm/sampling_params.h"

namespace nanovllm {
namespace {

[[noreturn]] void bad(const std::string& field, const std::string& rule, const std::string& got) {
  throw std::invalid_argument(field + " must be " + rule + ", got " + got);
}

std::string str(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

void require(bool ok, const char* field, const char* rule, double got) {
  if (!ok) bad(field, rule, str(got));
}

}  // namespace

void SamplingParams::validate() const {
  require(std::isfinite(temperature) && temperature >= 0, "temperature", ">= 0", temperature);
  require(top_p > 0 && top_p <= 1, "top_p", "in (0, 1]", top_p);
  require(top_k >= -1, "top_k", "-1, 0 (off) or a positive count", top_k);
  require(min_p >= 0 && min_p <= 1, "min_p", "in [0, 1]", min_p);
  require(max_tokens >= 1, "max_tokens", ">= 1", max_tokens);
  require(min_tokens >= 0 && min_tokens <= max_tokens, "min_tokens", "in [0, max_tokens]", min_tokens);
  require(std::isfinite(repetition_penalty) && repetition_penalty > 0, "repetition_penalty", "> 0",
          repetition_penalty);
  require(presence_penalty >= -2 && presence_penalty <= 2, "presence_penalty", "in [-2, 2]",
          presence_penalty);
  require(frequency_penalty >= -2 && frequency_penalty <= 2, "frequency_penalty", "in [-2, 2]",
          frequency_penalty);
  if (logprobs) require(*logprobs >= 0 && *logprobs <= 20, "logprobs", "in [0, 20]", *logprobs);
  for (int t : stop_token_ids) require(t >= 0, "stop_token_ids", "non-negative token ids", t);
  for (const std::string& s : stop) {
    if (s.empty()) bad("stop", "non-empty strings", "\"\"");
  }
  for (const auto& [token, bias] : logit_bias) {
    require(token >= 0, "logit_bias", "keyed by non-negative token ids", token);
    require(std::isfinite(bias) && bias >= -100 && bias <= 100, "logit_bias", "values in [-100, 100]", bias);
  }
  const StructuredOutputs& so = structured_outputs;
  const int kinds = !so.json.empty() + so.json_object + !so.regex.empty() + !so.choice.empty() + !so.grammar.empty();
  if (kinds > 1) {
    bad("structured_outputs", "one of json, json_object, regex, choice or grammar", std::to_string(kinds) + " of them");
  }
}

void Config::validate() const {
  require(max_num_batched_tokens >= 1, "max_num_batched_tokens", ">= 1", max_num_batched_tokens);
  require(max_num_seqs >= 1, "max_num_seqs", ">= 1", max_num_seqs);
  require(long_prefill_token_threshold >= 0, "long_prefill_token_threshold", ">= 0 (0 = no cap)",
          long_prefill_token_threshold);
  // 2^30, as for a checkpoint's max_position_embeddings: positions, slot numbers and
  // len + block_size - 1 must stay inside an int.
  require(max_model_len >= 0 && max_model_len <= (1 << 30), "max_model_len", "in [0, 2^30] (0 = the model's)",
          max_model_len);
  require(block_size >= 1 && block_size <= 1024, "block_size", "in [1, 1024]", block_size);
  require(kv_cache_bytes >= 0, "kv_cache_bytes", ">= 0", static_cast<double>(kv_cache_bytes));
  require(kv_cache_memory_fraction > 0 && kv_cache_memory_fraction <= 0.95,
          "kv_cache_memory_fraction", "in (0, 0.95]", kv_cache_memory_fraction);
  require(num_kv_blocks >= 0, "num_kv_blocks", ">= 0", num_kv_blocks);
  require(threads >= 0, "threads", ">= 0 (0 = all cores)", threads);
  require(tensor_parallel_size >= 1, "tensor_parallel_size", ">= 1", tensor_parallel_size);
  if (kv_cache_dtype != "bf16" && kv_cache_dtype != "f32") bad("kv_cache_dtype", "bf16 or f32", kv_cache_dtype);
  if (!quantization.empty() && quantization != "int8") bad("quantization", "int8 or empty", quantization);
}

void RequestOutput::append(const StepOutput& d) {
  token_ids.insert(token_ids.end(), d.new_token_ids.begin(), d.new_token_ids.end());
  text += d.new_text;
  logprobs.insert(logprobs.end(), d.new_logprobs.begin(), d.new_logprobs.end());
  if (d.finished) {
    finish_reason = d.finish_reason;
    stop_reason = d.stop_reason;
    num_cached_tokens = d.num_cached_tokens;
  }
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kNone: break;
  }
  return "";
}

}  // namespace nanovllm
