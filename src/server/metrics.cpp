// Prometheus text exposition of the server's counters, gauges and latency histograms.
#include "server/metrics.h"

#include <chrono>
#include <cstdio>

namespace nanovllm::server {
namespace {

constexpr double kRateWindow = 10.0;  // seconds over which tokens/s is averaged

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void write_metric(std::string& out, const char* name, const char* type, const char* help,
                  const std::string& labels, double value) {
  out += "# HELP " + std::string(name) + " " + help + "\n";
  out += "# TYPE " + std::string(name) + " " + type + "\n";
  out += std::string(name) + "{" + labels + "} " + num(value) + "\n";
}

// Escapes a label value as Prometheus' text format requires.
std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help,
                      const std::string& labels) const {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? num(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + ",le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum{" + labels + "} " + num(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(count_) + "\n";
}

Metrics::Metrics(std::string model_name)
    : labels_("model_name=\"" + label_value(model_name) + "\""),
      ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}),
      itl_({0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}) {}

void Metrics::observe_ttft(double seconds) {
  std::lock_guard lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::observe_inter_token(double seconds) {
  std::lock_guard lock(mu_);
  itl_.observe(seconds);
}

void Metrics::add_generated(int tokens, double now) {
  std::lock_guard lock(mu_);
  generation_tokens_ += tokens;
  recent_.emplace_back(now, tokens);
}

void Metrics::request_finished(FinishReason reason, int prompt_tokens) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += prompt_tokens;
  if (reason == FinishReason::kStop) ++finished_stop_;
  else if (reason == FinishReason::kLength) ++finished_length_;
  else ++finished_abort_;
}

void Metrics::set_engine_stats(const EngineStats& s) {
  std::lock_guard lock(mu_);
  stats_ = s;
}

EngineStats Metrics::engine_stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

double Metrics::tokens_per_second(double now) const {
  while (!recent_.empty() && recent_.front().first < now - kRateWindow) recent_.pop_front();
  int64_t tokens = 0;
  for (const auto& [t, n] : recent_) tokens += n;
  return tokens / kRateWindow;
}

std::string Metrics::render(double now) const {
  std::lock_guard lock(mu_);
  std::string out;
  const EngineStats& s = stats_;
  const double hit_rate = s.prompt_tokens > 0 ? double(s.cached_prompt_tokens) / s.prompt_tokens : 0.0;
  write_metric(out, "nanovllm:num_requests_running", "gauge", "Requests in the running batch.", labels_, s.num_running);
  write_metric(out, "nanovllm:num_requests_waiting", "gauge", "Requests waiting to be scheduled.", labels_, s.num_waiting);
  write_metric(out, "nanovllm:kv_blocks_total", "gauge", "KV-cache blocks in the pool.", labels_, s.kv_blocks_total);
  write_metric(out, "nanovllm:kv_blocks_free", "gauge", "KV-cache blocks not held by any request.", labels_, s.kv_blocks_free);
  write_metric(out, "nanovllm:kv_blocks_used", "gauge", "KV-cache blocks held by requests.", labels_,
               s.kv_blocks_total - s.kv_blocks_free);
  write_metric(out, "nanovllm:kv_cache_usage_perc", "gauge", "Fraction of KV-cache blocks in use.", labels_,
               s.kv_blocks_total > 0 ? double(s.kv_blocks_total - s.kv_blocks_free) / s.kv_blocks_total : 0.0);
  write_metric(out, "nanovllm:prefix_cache_hit_rate", "gauge",
               "Prompt tokens served from the prefix cache / prompt tokens admitted.", labels_, hit_rate);
  write_metric(out, "nanovllm:prefix_cache_queries_total", "counter", "Prompt tokens admitted.", labels_, s.prompt_tokens);
  write_metric(out, "nanovllm:prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.", labels_,
               s.cached_prompt_tokens);
  write_metric(out, "nanovllm:num_preemptions_total", "counter", "Requests preempted for lack of KV blocks.", labels_,
               s.num_preemptions);
  write_metric(out, "nanovllm:prompt_tokens_total", "counter", "Prompt tokens of finished requests.", labels_, prompt_tokens_);
  write_metric(out, "nanovllm:generation_tokens_total", "counter", "Tokens generated.", labels_, generation_tokens_);
  write_metric(out, "nanovllm:generation_tokens_per_second", "gauge",
               "Tokens generated per second over the last 10 seconds.", labels_, tokens_per_second(now));
  out += "# HELP nanovllm:request_success_total Finished requests by finish reason.\n";
  out += "# TYPE nanovllm:request_success_total counter\n";
  out += "nanovllm:request_success_total{" + labels_ + ",finished_reason=\"stop\"} " + std::to_string(finished_stop_) + "\n";
  out += "nanovllm:request_success_total{" + labels_ + ",finished_reason=\"length\"} " + std::to_string(finished_length_) + "\n";
  out += "nanovllm:request_success_total{" + labels_ + ",finished_reason=\"abort\"} " + std::to_string(finished_abort_) + "\n";
  ttft_.write(out, "nanovllm:time_to_first_token_seconds", "Time from request to first token.", labels_);
  itl_.write(out, "nanovllm:inter_token_latency_seconds", "Time between two outputs of a request.", labels_);
  return out;
}

}  // namespace nanovllm::server
