// Server metrics in Prometheus' text format: engine gauges, token counters, latency histograms.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/llm_engine.h"
#include "nanovllm/outputs.h"

namespace nanovllm::server {

// A cumulative histogram with fixed upper bounds (seconds), as Prometheus expects.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  void write(std::string& out, const std::string& name, const std::string& help,
             const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Written by the engine thread, read by /metrics; every method takes the lock.
class Metrics {
 public:
  explicit Metrics(std::string model_name);

  void observe_ttft(double seconds);
  void observe_inter_token(double seconds);
  void add_generated(int tokens, double now);
  void request_finished(FinishReason reason, int prompt_tokens);
  void set_engine_stats(const EngineStats& s);
  EngineStats engine_stats() const;

  // The whole exposition; now is seconds on the steady clock (for tokens/s over a window).
  std::string render(double now) const;

 private:
  double tokens_per_second(double now) const;

  mutable std::mutex mu_;
  std::string labels_;  // model_name="..."
  EngineStats stats_;
  Histogram ttft_, itl_;
  int64_t generation_tokens_ = 0, prompt_tokens_ = 0;
  int64_t finished_stop_ = 0, finished_length_ = 0, finished_abort_ = 0;
  mutable std::deque<std::pair<double, int>> recent_;  // (time, tokens) of the last window
};

// Seconds on the steady clock, the time base of every timing above.
double now_seconds();

}  // namespace nanovllm::server
