// HTTP routes of the OpenAI-compatible server over cpp-httplib; generation runs on the engine
// thread (EngineWorker), handlers only parse, submit, and stream what comes back.
#include "server/server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "nanovllm/error.h"
#include "engine/llm_engine.h"
#include "llm_internal.h"
#include "server/api_error.h"
#include "server/engine_worker.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "tokenizer/chat_template.h"

namespace nanovllm::server {

const char* error_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 415: return "invalid_request_error";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string error_body(int status, const std::string& message, const std::string& param) {
  json j = {{"error", {{"message", message}, {"type", error_type(status)},
                       {"param", param.empty() ? json() : json(param)}, {"code", status}}}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& param = "") {
  res.status = status;
  res.set_content(error_body(status, message, param), "application/json");
}

void send_json(httplib::Response& res, const json& j) {
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// One generation request in flight: its choices' outputs and the builder that renders them.
// Whoever drops the last reference to an unfinished job (a client that went away, a failed
// write) aborts its engine requests, so their KV blocks return to the pool.
struct Job {
  Job(EngineWorker& w, GenerationRequest r, const ServingContext& ctx, std::atomic<int>& active)
      : worker(w), req(std::move(r)), builder(req, ctx), queue(std::make_shared<OutputQueue>()), active_jobs(active) {
    ++active_jobs;
  }
  ~Job() {
    if (!builder.all_finished()) worker.abort(ids);
    --active_jobs;
  }

  void start() { ids = worker.submit(expand(req), queue); }

  void run_to_end() {
    std::vector<ChoiceEvent> events;
    while (!builder.all_finished()) {
      events.clear();
      queue->pop_all(events, 1000);
      for (const ChoiceEvent& e : events) builder.add(e, nullptr);
    }
  }

  // One round of streaming: false when the client is gone (httplib then closes the connection).
  bool pump(httplib::DataSink& sink) {
    std::string data;
    if (!opened) {
      data = builder.stream_start();
      opened = true;
    }
    std::vector<ChoiceEvent> events;
    queue->pop_all(events, 100);
    for (const ChoiceEvent& e : events) builder.add(e, &data);
    const bool done = builder.all_finished();
    if (done) data += builder.stream_end();
    if (!data.empty() && !sink.write(data.data(), data.size())) return false;
    if (done) sink.done();
    return true;
  }

  EngineWorker& worker;
  GenerationRequest req;
  ResponseBuilder builder;
  std::shared_ptr<OutputQueue> queue;
  std::vector<int64_t> ids;
  bool opened = false;
  std::atomic<int>& active_jobs;  // the server's count of jobs alive, for the drain on stop
};

class Server {
 public:
  Server(LLM& llm, const ServerOptions& opts);
  void run(const std::function<bool()>& should_stop);

 private:
  void routes();
  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  json body_of(const httplib::Request& req) const;
  json models() const;
  void drain_and_stop(const std::function<bool()>& should_stop, const std::atomic<bool>& stopped);
  httplib::Server::HandlerResponse authorize(const httplib::Request& req, httplib::Response& res) const;
  // Wraps a handler so that every exception becomes an OpenAI error response.
  httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> fn);

  LLM& llm_;
  ServerOptions opts_;
  ServingContext ctx_;
  std::unique_ptr<ChatTemplate> chat_template_;
  Metrics metrics_;
  EngineWorker worker_;
  httplib::Server http_;
  int64_t started_ = static_cast<int64_t>(std::time(nullptr));
  std::atomic<bool> draining_{false};  // stop requested: new work gets 503
  std::atomic<int> active_jobs_{0};
};

std::unique_ptr<ChatTemplate> load_chat_template(const std::string& model_dir, const std::string& file) {
  if (!file.empty()) return std::make_unique<ChatTemplate>(ChatTemplate::from_file(file, model_dir));
  try {
    return std::make_unique<ChatTemplate>(ChatTemplate::from_tokenizer_config(model_dir));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nanovllm serve: no chat template (%s); /v1/chat/completions will answer 400\n", e.what());
    return nullptr;
  }
}

Server::Server(LLM& llm, const ServerOptions& opts)
    : llm_(llm),
      opts_(opts),
      chat_template_(llm.tokenizer() ? load_chat_template(llm.config().model, opts.chat_template_file) : nullptr),
      metrics_(opts.served_model_name),
      worker_(internal::engine(llm), opts.max_waiting, metrics_) {
  ctx_.tokenizer = llm.tokenizer();
  ctx_.chat_template = chat_template_.get();
  ctx_.defaults = llm.default_sampling_params();
  ctx_.max_model_len = llm.max_model_len();
  ctx_.model_name = opts.served_model_name;
  const int threads = std::max(8, opts.http_threads);
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_.set_payload_max_length(opts.max_body_bytes);
  http_.set_read_timeout(30);
  routes();
}

httplib::Server::HandlerResponse Server::authorize(const httplib::Request& req, httplib::Response& res) const {
  if (draining_ && req.path != "/health" && req.path != "/metrics") {
    res.set_header("Connection", "close");
    send_error(res, 503, "the server is shutting down");
    return httplib::Server::HandlerResponse::Handled;
  }
  if (opts_.api_key.empty() || req.path.rfind("/v1", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
  if (req.get_header_value("Authorization") == "Bearer " + opts_.api_key) {
    return httplib::Server::HandlerResponse::Unhandled;
  }
  // The body was not read: closing the connection drops it. On a kept-alive connection httplib
  // would take it for the next request line and wait the 30 s read timeout, holding a thread
  // and the server's shutdown.
  res.set_header("Connection", "close");
  send_error(res, 401, "missing or wrong API key: send 'Authorization: Bearer <key>'");
  return httplib::Server::HandlerResponse::Handled;
}

httplib::Server::Handler Server::guarded(std::function<void(const httplib::Request&, httplib::Response&)> fn) {
  return [fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
    try {
      fn(req, res);
    } catch (const ApiError& e) {
      send_error(res, e.status(), e.what(), e.param());
    } catch (const std::invalid_argument& e) {  // SamplingParams::validate names the field first
      const std::string msg = e.what();
      send_error(res, 400, msg, msg.substr(0, msg.find(' ')));
    } catch (const Error& e) {  // the engine refused the request (too long, bad token id, ...)
      send_error(res, 400, e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
  };
}

json Server::body_of(const httplib::Request& req) const {
  const std::string type = req.get_header_value("Content-Type");
  if (!type.empty() && type.find("json") == std::string::npos) {
    throw ApiError(415, "Content-Type must be application/json, got '" + type + "'");
  }
  return parse_body(req.body);
}

json Server::models() const {
  json card = {{"id", opts_.served_model_name}, {"object", "model"}, {"created", started_},
               {"owned_by", "nanovllm"}, {"root", llm_.config().model}, {"parent", nullptr},
               {"max_model_len", ctx_.max_model_len}};
  return {{"object", "list"}, {"data", json::array({card})}};
}

void Server::generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  const json body = body_of(req);
  check_model(body, ctx_.model_name);
  GenerationRequest g = endpoint == Endpoint::kChat ? parse_chat_request(body, ctx_) : parse_completion_request(body, ctx_);
  auto job = std::make_shared<Job>(worker_, std::move(g), ctx_, active_jobs_);
  job->start();
  if (!job->req.stream) {
    job->run_to_end();
    send_json(res, job->builder.response());
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream",
                                   [job](size_t, httplib::DataSink& sink) { return job->pump(sink); });
}

void Server::routes() {
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return authorize(req, res); });
  http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler already wrote an OpenAI error
    std::string msg = res.status == 404 ? "not found: " + req.method + " " + req.path
                    : res.status == 413 ? "the request body is too large"
                                        : "bad request";
    send_error(res, res.status, msg);
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, 500, "internal error");
  });
  http_.Get("/health", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  http_.Get("/version", [](const httplib::Request&, httplib::Response& res) { send_json(res, {{"version", "0.1.0"}}); });
  http_.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) { send_json(res, models()); }));
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(now_seconds()), "text/plain; version=0.0.4; charset=utf-8");
  });
  http_.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, Endpoint::kCompletions);
  }));
  http_.Post("/v1/chat/completions", guarded([this](const httplib::Request& req, httplib::Response& res) {
    generate(req, res, Endpoint::kChat);
  }));
  http_.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
    const json body = body_of(req);
    check_model(body, ctx_.model_name);
    send_json(res, tokenize(body, ctx_));
  }));
  http_.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) {
    const json body = body_of(req);
    check_model(body, ctx_.model_name);
    send_json(res, detokenize(body, ctx_));
  }));
}

// httplib's stop() cuts open streams short, so it comes last: first new work is refused (503),
// in-flight jobs get drain_seconds to finish, the rest are aborted (their streams still end
// properly, with finish_reason "abort" and [DONE]), and only then does the listener stop.
void Server::drain_and_stop(const std::function<bool()>& should_stop, const std::atomic<bool>& stopped) {
  using clock = std::chrono::steady_clock;
  auto wait_jobs = [&](double seconds) {
    const auto deadline = clock::now() + std::chrono::duration<double>(seconds);
    while (!stopped && active_jobs_ > 0 && clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  while (!stopped && !should_stop()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  draining_ = true;
  wait_jobs(opts_.drain_seconds);
  worker_.shutdown();
  wait_jobs(5);
  http_.stop();
}

void Server::run(const std::function<bool()>& should_stop) {
  int port = opts_.port;
  if (port == 0) port = http_.bind_to_any_port(opts_.host);
  else if (!http_.bind_to_port(opts_.host, port)) port = -1;
  if (port <= 0) throw Error("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port));
  std::printf("nanovllm serve: model '%s', listening on http://%s:%d\n", opts_.served_model_name.c_str(),
              opts_.host.c_str(), port);
  std::fflush(stdout);
  std::atomic<bool> stopped{false};
  std::thread watcher([&] { drain_and_stop(should_stop, stopped); });
  http_.listen_after_bind();
  stopped = true;
  watcher.join();
  worker_.shutdown();
  std::fprintf(stderr, "nanovllm serve: stopped\n");
}

}  // namespace

void serve(LLM& llm, const ServerOptions& opts, const std::function<bool()>& should_stop) {
  Server server(llm, opts);
  server.run(should_stop);
}

}  // namespace nanovllm::server
