// What the engine hands back: per-step deltas for streaming, and finished requests.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nanovllm {

enum class FinishReason { kNone, kStop, kLength, kAbort };

// "stop", "length", "abort" (OpenAI's names); "" while running.
const char* finish_reason_name(FinishReason r);

// The chosen token's log-probability and, when asked, the most likely alternatives.
struct TokenLogprob {
  int token_id = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int, float>> top;  // (token id, logprob), most likely first
};

// What one step produced for one request: the new tokens and the text they completed.
// Concatenating every delta of a request gives its RequestOutput.
struct StepOutput {
  int64_t request_id = 0;
  std::vector<int> new_token_ids;
  std::string new_text;  // held back while it could still be the start of a stop string
  std::vector<TokenLogprob> new_logprobs;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  std::string stop_reason;  // the stop string or stop token id that ended it, if any
  int num_prompt_tokens = 0;
  int num_cached_tokens = 0;  // prompt tokens served from the prefix cache
  int num_output_tokens = 0;
};

// A finished request, as LLM::generate returns it.
struct RequestOutput {
  int64_t request_id = 0;
  std::vector<int> prompt_token_ids;
  std::vector<int> token_ids;
  std::string text;
  std::vector<TokenLogprob> logprobs;
  FinishReason finish_reason = FinishReason::kNone;
  std::string stop_reason;
  int num_cached_tokens = 0;

  // Adds one step's delta of this request (the tokens, text, logprobs, and the end if it ended).
  void append(const StepOutput& delta);
};

}  // namespace nanovllm
