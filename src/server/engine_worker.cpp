// The engine thread: applies queued submissions and aborts between steps, routes step outputs.
#include "server/engine_worker.h"

#include <chrono>
#include <cstdio>
#include <exception>

#include "server/api_error.h"

namespace nanovllm::server {

// A request from a handler thread, answered through its promise.
struct EngineWorker::Command {
  enum Kind { kSubmit, kAbort } kind = kSubmit;
  std::vector<Submission> subs;
  std::shared_ptr<OutputQueue> queue;
  std::vector<int64_t> ids;  // kAbort
  std::promise<std::vector<int64_t>> done;
};

void OutputQueue::push(ChoiceEvent e) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

void OutputQueue::pop_all(std::vector<ChoiceEvent>& out, int timeout_ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); });
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
}

EngineWorker::EngineWorker(LLMEngine& engine, int max_waiting, Metrics& metrics)
    : engine_(engine), max_waiting_(max_waiting), metrics_(metrics) {
  publish_stats();
  thread_ = std::thread([this] { run(); });
}

EngineWorker::~EngineWorker() { shutdown(); }

std::vector<int64_t> EngineWorker::submit(std::vector<Submission> subs, std::shared_ptr<OutputQueue> queue) {
  auto cmd = std::make_unique<Command>();
  cmd->subs = std::move(subs);
  cmd->queue = std::move(queue);
  std::future<std::vector<int64_t>> result = cmd->done.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw ApiError(503, "the server is shutting down");
    commands_.push_back(std::move(cmd));
  }
  cv_.notify_all();
  return result.get();
}

void EngineWorker::abort(const std::vector<int64_t>& ids) {
  if (ids.empty()) return;
  auto cmd = std::make_unique<Command>();
  cmd->kind = Command::kAbort;
  cmd->ids = ids;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;  // shutdown aborts everything anyway
    commands_.push_back(std::move(cmd));
  }
  cv_.notify_all();
}

void EngineWorker::shutdown() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int EngineWorker::num_unfinished() const {
  std::lock_guard lock(mu_);
  return num_unfinished_;
}

void EngineWorker::run() {
  for (;;) {
    std::deque<std::unique_ptr<Command>> cmds;
    bool stopping;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !commands_.empty() || engine_.has_unfinished(); });
      cmds.swap(commands_);
      stopping = stopping_;
    }
    for (auto& cmd : cmds) apply(*cmd);
    if (stopping) break;
    if (engine_.has_unfinished()) step_once();
    publish_stats();
  }
  // Whatever is still running is cut short; its readers see a finished "abort" event.
  std::vector<int64_t> left;
  for (const auto& [id, route] : routes_) left.push_back(id);
  for (int64_t id : left) abort_route(id);
  publish_stats();
}

void EngineWorker::apply(Command& cmd) {
  if (cmd.kind == Command::kAbort) {
    for (int64_t id : cmd.ids) abort_route(id);
    return;
  }
  try {
    bool stopping;
    {
      std::lock_guard lock(mu_);
      stopping = stopping_;
    }
    if (stopping) throw ApiError(503, "the server is shutting down");
    cmd.done.set_value(add_all(cmd.subs, cmd.queue));
  } catch (...) {
    cmd.done.set_exception(std::current_exception());
  }
}

std::vector<int64_t> EngineWorker::add_all(std::vector<Submission>& subs, const std::shared_ptr<OutputQueue>& q) {
  const int waiting = engine_.scheduler().num_waiting();
  if (max_waiting_ > 0 && waiting + static_cast<int>(subs.size()) > max_waiting_) {
    throw ApiError(503, "the server is overloaded: " + std::to_string(waiting) +
                            " requests are waiting (--max-waiting " + std::to_string(max_waiting_) +
                            "); retry later");
  }
  std::vector<int64_t> ids;
  const double now = now_seconds();
  try {
    for (size_t i = 0; i < subs.size(); ++i) {
      ids.push_back(engine_.add_request(std::move(subs[i].prompt_token_ids), subs[i].params));
      routes_[ids.back()] = Route{q, static_cast<int>(i), now, now, false};
    }
  } catch (...) {
    for (int64_t id : ids) {  // all or nothing
      engine_.abort(id);
      routes_.erase(id);
    }
    throw;
  }
  return ids;
}

void EngineWorker::step_once() {
  std::vector<StepOutput> outs;
  try {
    outs = engine_.step();
  } catch (const std::exception& e) {
    // A failing step must not leave readers waiting forever: end everything in flight.
    std::fprintf(stderr, "nanovllm serve: engine step failed: %s\n", e.what());
    std::vector<int64_t> left;
    for (const auto& [id, route] : routes_) left.push_back(id);
    for (int64_t id : left) abort_route(id);
    return;
  }
  for (StepOutput& o : outs) deliver(o);
}

void EngineWorker::deliver(StepOutput& out) {
  auto it = routes_.find(out.request_id);
  if (it == routes_.end()) return;  // already aborted and answered
  Route& r = it->second;
  const double now = now_seconds();
  if (!out.new_token_ids.empty()) {
    if (!r.got_token) metrics_.observe_ttft(now - r.submitted);
    else metrics_.observe_inter_token(now - r.last_token);
    r.got_token = true;
    r.last_token = now;
    metrics_.add_generated(static_cast<int>(out.new_token_ids.size()), now);
  }
  const bool finished = out.finished;
  if (finished) metrics_.request_finished(out.finish_reason, out.num_prompt_tokens);
  r.queue->push(ChoiceEvent{r.choice, std::move(out)});
  if (finished) routes_.erase(it);
}

void EngineWorker::abort_route(int64_t id) {
  auto it = routes_.find(id);
  if (it == routes_.end()) return;
  engine_.abort(id);
  StepOutput out;
  out.request_id = id;
  out.finished = true;
  out.finish_reason = FinishReason::kAbort;
  metrics_.request_finished(FinishReason::kAbort, 0);
  it->second.queue->push(ChoiceEvent{it->second.choice, std::move(out)});
  routes_.erase(it);
}

void EngineWorker::publish_stats() {
  const EngineStats s = engine_.stats();
  metrics_.set_engine_stats(s);
  std::lock_guard lock(mu_);
  num_unfinished_ = s.num_running + s.num_waiting;
}

}  // namespace nanovllm::server
