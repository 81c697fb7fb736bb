// Sequence bookkeeping and its private random generator.
#include "engine/sequence.h"

#include <utility>

namespace nanovllm {

Sequence::Sequence(int64_t id, std::vector<int> prompt_token_ids, SamplingParams params,
                   uint64_t seed)
    : id_(id),
      token_ids_(std::move(prompt_token_ids)),
      num_prompt_tokens_(static_cast<int>(token_ids_.size())),
      params_(std::move(params)),
      rng_(seed) {}

double Sequence::next_uniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // 53 random bits
}

}  // namespace nanovllm
