// A one-line progress bar for long runs: requests done and token rates, on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "nanovllm/outputs.h"

namespace nanovllm {

class ProgressBar {
 public:
  // Draws nothing unless `enabled` and stderr is a terminal (a log file gets no \r-redraws).
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

// Feeds a ProgressBar from the deltas of step(), for loops that drive the engine themselves
// (the CLI's generate and bench): a request is done when its delta says finished, its prompt
// counts as prefilled when its first token arrives, every later token as decoded.
class StepProgress {
 public:
  StepProgress(int total, bool enabled) : bar_(std::in_place, total, enabled) {}

  void add(const StepOutput& delta);
  void finish() { bar_.reset(); }  // ends the line, so what is printed next starts clean

 private:
  std::optional<ProgressBar> bar_;
  int done_ = 0;
  int64_t prefill_tokens_ = 0, decode_tokens_ = 0;
};

}  // namespace nanovllm
