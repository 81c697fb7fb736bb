// The bridge between HTTP threads and the single-threaded engine: one thread runs the step
// loop, handlers submit requests through a command queue and read per-request output queues.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "engine/llm_engine.h"
#include "server/metrics.h"

namespace nanovllm::server {

// One engine output, tagged with the choice (prompt × sample) of the HTTP request it belongs to.
struct ChoiceEvent {
  int choice = 0;
  StepOutput out;
};

// The outputs of one HTTP request (all its choices), filled by the engine thread.
class OutputQueue {
 public:
  void push(ChoiceEvent e);
  // Moves every queued event into out; waits up to timeout_ms when none is queued.
  void pop_all(std::vector<ChoiceEvent>& out, int timeout_ms);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ChoiceEvent> events_;
};

struct Submission {
  std::vector<int> prompt_token_ids;
  SamplingParams params;
};

class EngineWorker {
 public:
  // max_waiting: submissions are refused (ApiError 503) while more requests than this wait.
  EngineWorker(LLMEngine& engine, int max_waiting, Metrics& metrics);
  ~EngineWorker();  // aborts what is left and joins the engine thread
  EngineWorker(const EngineWorker&) = delete;
  EngineWorker& operator=(const EngineWorker&) = delete;

  // Adds every submission (choice i = subs[i]) or none; blocks until the engine thread took
  // them. Rethrows the engine's validation error, or ApiError 503 when over max_waiting.
  std::vector<int64_t> submit(std::vector<Submission> subs, std::shared_ptr<OutputQueue> queue);

  // Ends requests early (a client went away); their KV blocks return to the pool.
  void abort(const std::vector<int64_t>& ids);

  // Aborts every request and stops the engine thread; later submissions get 503.
  void shutdown();

  // Unfinished requests (running + waiting), as last seen by the engine thread.
  int num_unfinished() const;

 private:
  struct Command;
  // Where an engine request's outputs go, and its timing for the latency histograms.
  struct Route {
    std::shared_ptr<OutputQueue> queue;
    int choice = 0;
    double submitted = 0, last_token = 0;  // seconds on the steady clock
    bool got_token = false;
  };

  void run();
  void apply(Command& cmd);
  std::vector<int64_t> add_all(std::vector<Submission>& subs, const std::shared_ptr<OutputQueue>& q);
  void step_once();
  void deliver(StepOutput& out);
  void abort_route(int64_t id);
  void publish_stats();

  LLMEngine& engine_;
  const int max_waiting_;
  Metrics& metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Command>> commands_;
  bool stopping_ = false;
  int num_unfinished_ = 0;

  std::unordered_map<int64_t, Route> routes_;  // engine thread only
  std::thread thread_;
};

}  // namespace nanovllm::server
