// Turns one row of logits into one token under a request's SamplingParams.
#pragma once

#include <span>

#include "nanovllm/outputs.h"

namespace nanovllm {

class Sequence;

// Order, as in vLLM: logit_bias -> penalties -> min_tokens mask -> (greedy argmax | temperature -> min_p ->
// top_k -> top_p -> one draw from the request's own generator). `logits` is modified in place.
// `eos_ids` are masked until params.min_tokens tokens exist. When params.logprobs is set,
// `logprob` receives the chosen token's log-probability under the raw model distribution
// and the top alternatives (vLLM's default "raw logprobs").
int sample_token(std::span<float> logits, Sequence& seq, std::span<const int> eos_ids,
                 TokenLogprob* logprob);

}  // namespace nanovllm
