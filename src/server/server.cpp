// HTTP routes of the OpenAI-compatible server over HttpServer; generation runs on the engine
// thread (EngineWorker), handlers only parse, submit, and stream what comes back.
#include "server/server.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <thread>

#include "nanovllm/error.h"
#include "engine/llm_engine.h"
#include "llm_internal.h"
#include "server/api_error.h"
#include "server/engine_worker.h"
#include "server/http_server.h"
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

HttpResponse error_response(int status, const std::string& message, const std::string& param = "") {
  HttpResponse r;
  r.status = status;
  r.body = error_body(status, message, param);
  return r;
}

HttpResponse json_response(const json& j) {
  HttpResponse r;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
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

  // Collects the whole answer; false when the client left first (checked between engine
  // steps, so its request stops generating within about 0.1 s).
  bool run_to_end(HttpExchange& ex) {
    std::vector<ChoiceEvent> events;
    while (!builder.all_finished()) {
      if (ex.client_gone()) return false;
      events.clear();
      queue->pop_all(events, 100);
      for (const ChoiceEvent& e : events) builder.add(e, nullptr);
    }
    return true;
  }

  // Streams every event as it comes; returns when done or when the client is gone.
  void stream(HttpExchange& ex) {
    HttpResponse head;
    head.content_type = "text/event-stream";
    head.headers = {{"Cache-Control", "no-cache"}};
    if (!ex.start_stream(std::move(head)) || !ex.write(builder.stream_start())) return;
    std::vector<ChoiceEvent> events;
    while (!builder.all_finished()) {
      if (ex.client_gone()) return;
      std::string data;
      events.clear();
      queue->pop_all(events, 100);
      for (const ChoiceEvent& e : events) builder.add(e, &data);
      if (builder.all_finished()) data += builder.stream_end();
      if (!data.empty() && !ex.write(data)) return;
    }
    ex.end_stream();
  }

  EngineWorker& worker;
  GenerationRequest req;
  ResponseBuilder builder;
  std::shared_ptr<OutputQueue> queue;
  std::vector<int64_t> ids;
  std::atomic<int>& active_jobs;  // the server's count of jobs alive, for the drain on stop
};

HttpLimits http_limits(const ServerOptions& o) {
  HttpLimits l;
  l.max_body_bytes = o.max_body_bytes;
  l.max_connections = o.max_connections;
  l.max_connections_per_client = o.max_connections_per_client;
  l.header_seconds = o.header_timeout;
  l.idle_seconds = o.keep_alive_timeout;
  return l;
}

class Server {
 public:
  Server(LLM& llm, const ServerOptions& opts);
  void run(const std::function<bool()>& should_stop);

 private:
  using Handler = std::function<void(const HttpRequest&, HttpExchange&)>;
  struct Route {
    std::string method;
    Handler handler;
  };

  void routes();
  void get(const std::string& path, std::function<HttpResponse()> fn);
  void post(const std::string& path, std::function<HttpResponse(const json&)> fn);
  std::optional<HttpResponse> check(const HttpRequest& head) const;
  void handle(const HttpRequest& req, HttpExchange& ex);
  void generate(const HttpRequest& req, HttpExchange& ex, Endpoint endpoint);
  json body_of(const HttpRequest& req) const;
  json models() const;
  void drain_and_stop(const std::function<bool()>& should_stop, const std::atomic<bool>& stopped);

  LLM& llm_;
  ServerOptions opts_;
  ServingContext ctx_;
  std::unique_ptr<ChatTemplate> chat_template_;
  Metrics metrics_;
  EngineWorker worker_;
  std::map<std::string, Route> routes_;  // by path
  HttpServer http_;
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
      worker_(internal::engine(llm), opts.max_waiting, metrics_),
      http_(http_limits(opts), HttpRoutes{[this](const HttpRequest& h) { return check(h); },
                                          [this](const HttpRequest& r, HttpExchange& ex) { handle(r, ex); },
                                          [](int status, const std::string& m) { return error_response(status, m); }}) {
  ctx_.tokenizer = llm.tokenizer();
  ctx_.chat_template = chat_template_.get();
  ctx_.defaults = llm.default_sampling_params();
  ctx_.max_model_len = llm.max_model_len();
  ctx_.model_name = opts.served_model_name;
  ctx_.reasoning_parser = opts.reasoning_parser;
  ctx_.tool_parser = opts.tool_call_parser.empty() ? template_tool_parser(chat_template_.get()) : opts.tool_call_parser;
  routes();
}

// Decided from the head alone, before the body is read: a refused request's body is never
// read and its connection closes (kept alive, the body would be taken for the next request).
std::optional<HttpResponse> Server::check(const HttpRequest& head) const {
  const auto it = routes_.find(head.path);
  if (draining_ && head.path != "/health" && head.path != "/metrics") {
    HttpResponse r = error_response(503, "the server is shutting down");
    r.close = true;
    return r;
  }
  if (it == routes_.end()) return error_response(404, "not found: " + head.method + " " + head.path);
  if (head.method != it->second.method) {
    HttpResponse r = error_response(405, "method " + head.method + " not allowed on " + head.path + " (use " +
                                             it->second.method + ")");
    r.headers = {{"Allow", it->second.method}};
    return r;
  }
  if (head.method == "POST" && head.header("Content-Length").empty() && head.header("Transfer-Encoding").empty()) {
    return error_response(411, "a POST needs a body with Content-Length (or chunked)");
  }
  if (!opts_.api_key.empty() && head.path.rfind("/v1", 0) == 0 &&
      head.header("Authorization") != "Bearer " + opts_.api_key) {
    HttpResponse r = error_response(401, "missing or wrong API key: send 'Authorization: Bearer <key>'");
    r.close = true;
    return r;
  }
  return std::nullopt;
}

// Every exception becomes an OpenAI error response.
void Server::handle(const HttpRequest& req, HttpExchange& ex) {
  try {
    routes_.at(req.path).handler(req, ex);
  } catch (const ApiError& e) {
    ex.respond(error_response(e.status(), e.what(), e.param()));
  } catch (const std::invalid_argument& e) {  // SamplingParams::validate names the field first
    const std::string msg = e.what();
    ex.respond(error_response(400, msg, msg.substr(0, msg.find(' '))));
  } catch (const Error& e) {  // the engine refused the request (too long, bad token id, ...)
    ex.respond(error_response(400, e.what()));
  } catch (const std::exception& e) {
    ex.respond(error_response(500, std::string("internal error: ") + e.what()));
  }
}

json Server::body_of(const HttpRequest& req) const {
  const std::string type = req.header("Content-Type");
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

void Server::generate(const HttpRequest& req, HttpExchange& ex, Endpoint endpoint) {
  const json body = body_of(req);
  check_model(body, ctx_.model_name);
  GenerationRequest g = endpoint == Endpoint::kChat ? parse_chat_request(body, ctx_) : parse_completion_request(body, ctx_);
  Job job(worker_, std::move(g), ctx_, active_jobs_);
  job.start();
  if (job.req.stream) return job.stream(ex);
  if (job.run_to_end(ex)) ex.respond(json_response(job.builder.response()));
}

void Server::get(const std::string& path, std::function<HttpResponse()> fn) {
  routes_[path] = Route{"GET", [fn = std::move(fn)](const HttpRequest&, HttpExchange& ex) { ex.respond(fn()); }};
}

void Server::post(const std::string& path, std::function<HttpResponse(const json&)> fn) {
  routes_[path] = Route{"POST", [this, fn = std::move(fn)](const HttpRequest& req, HttpExchange& ex) {
                          const json body = body_of(req);
                          check_model(body, ctx_.model_name);
                          ex.respond(fn(body));
                        }};
}

void Server::routes() {
  get("/health", [this] {
    HttpResponse r;
    r.content_type.clear();
    if (draining_) r = error_response(503, "the server is shutting down");
    return r;
  });
  get("/version", [] { return json_response({{"version", "0.1.0"}}); });
  get("/v1/models", [this] { return json_response(models()); });
  get("/metrics", [this] {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_.render(now_seconds());
    return r;
  });
  routes_["/v1/completions"] = Route{"POST", [this](const HttpRequest& req, HttpExchange& ex) {
                                       generate(req, ex, Endpoint::kCompletions);
                                     }};
  routes_["/v1/chat/completions"] = Route{"POST", [this](const HttpRequest& req, HttpExchange& ex) {
                                            generate(req, ex, Endpoint::kChat);
                                          }};
  post("/tokenize", [this](const json& body) { return json_response(tokenize(body, ctx_)); });
  post("/detokenize", [this](const json& body) { return json_response(detokenize(body, ctx_)); });
}

// New work is refused (503, /health too) while in-flight jobs get drain_seconds to finish;
// the rest are aborted (their streams still end properly, with finish_reason "abort" and
// [DONE]); then every connection closes. Idle and half-sent connections cannot hold it up.
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
  http_.begin_drain();
  wait_jobs(opts_.drain_seconds);
  worker_.shutdown();
  wait_jobs(5);
  http_.stop();
}

void Server::run(const std::function<bool()>& should_stop) {
  const int port = http_.listen(opts_.host, opts_.port);
  std::printf("nanovllm serve: model '%s', listening on http://%s:%d\n", opts_.served_model_name.c_str(),
              opts_.host.c_str(), port);
  std::fflush(stdout);
  std::atomic<bool> stopped{false};
  std::thread watcher([&] { drain_and_stop(should_stop, stopped); });
  http_.run();
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
