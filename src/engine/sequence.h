// One request as the engine sees it: its tokens, how many have KV in the cache, its blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/constraint.h"
#include "nanovllm/outputs.h"
#include "nanovllm/sampling_params.h"

namespace nanovllm {

enum class SeqStatus { kWaiting, kRunning, kFinished };

class Sequence {
 public:
  Sequence(int64_t id, std::vector<int> prompt_token_ids, SamplingParams params, uint64_t seed);

  int64_t id() const { return id_; }
  const SamplingParams& params() const { return params_; }

  const std::vector<int>& token_ids() const { return token_ids_; }
  int num_tokens() const { return static_cast<int>(token_ids_.size()); }
  int num_prompt_tokens() const { return num_prompt_tokens_; }
  int num_output_tokens() const { return num_tokens() - num_prompt_tokens_; }
  int last_token() const { return token_ids_.back(); }
  void append_token(int token) { token_ids_.push_back(token); }

  // Tokens whose K/V is in the cache; the next step computes from here on.
  int num_computed = 0;
  // Prompt tokens found in the prefix cache when the request was first admitted.
  int num_cached_prompt_tokens = 0;
  bool admitted_before = false;
  std::vector<int> block_table;
  SeqStatus status = SeqStatus::kWaiting;
  FinishReason finish_reason = FinishReason::kNone;
  std::string stop_reason;
  std::vector<TokenLogprob> logprobs;
  // Structured output: the request's grammar (null when free) and the mask of the tokens it
  // allows next, filled while the forward runs. The grammar follows the output tokens, which
  // preemption keeps, so a recomputed sequence resumes with its grammar where it was.
  std::unique_ptr<Constraint> constraint;
  std::vector<uint32_t> allowed;

  // Tokens still to compute before this sequence can sample again.
  int num_uncomputed() const { return num_tokens() - num_computed; }

  // One uniform draw in [0, 1) from this request's own generator: the same seed gives the
  // same draws whatever else shares the batch.
  double next_uniform();

 private:
  int64_t id_;
  std::vector<int> token_ids_;
  int num_prompt_tokens_;
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace nanovllm
