// A one-line progress bar for LLMEngine::generate: requests done and token rates.
#pragma once

#include <chrono>
#include <cstdint>

namespace nanovllm {

class ProgressBar {
 public:
  // Draws nothing unless `enabled` and stderr is a terminal.
  ProgressBar(int total, bool enabled);
  ~ProgressBar();

  void update(int done, int64_t prefill_tokens, int64_t decode_tokens);

 private:
  using Clock = std::chrono::steady_clock;
  int total_;
  bool enabled_;
  Clock::time_point start_;
  Clock::time_point last_draw_;
};

}  // namespace nanovllm
