// A small HTTP/1.1 server for the OpenAI routes, built to survive slow and hostile clients:
// deadlines for a request's head and body, idle keep-alive reaping, caps on connections in
// total and per client address, body limits after decoding (chunked, gzip), pipelining, and
// detection of clients that went away. Boost.Beast/Asio stay inside http_server.cpp.
//
// I/O runs on two Asio threads and never blocks; each complete request is handed to a thread
// of its own (bounded by the connection caps), which may block: generation waits for tokens.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nanovllm::server {

struct HttpLimits {
  std::size_t max_body_bytes = 8u << 20;     // after decoding; larger bodies get 413
  std::size_t max_header_bytes = 64u << 10;  // request line and headers; larger get 431
  double header_seconds = 10;                // a request's head must arrive within this
  double body_seconds = 60;                  // and its body within this once the head is in
  double idle_seconds = 5;                   // a kept-alive connection closes after this long idle
  double write_seconds = 60;                 // a client that reads nothing this long is gone
  int max_connections = 1000;                // open at once; beyond it new ones get 503
  int max_connections_per_client = 256;      // per client IP address; beyond it 429
};

struct HttpRequest {
  std::string method;  // as sent: "GET", "POST", ...
  std::string path;    // the target without its query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;    // decoded (chunked, gzip, deflate); empty for the head check
  std::string client;  // the peer's IP address

  std::string header(std::string_view name) const;  // case-insensitive; "" when absent
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // close the connection after this response
};

// A request's way back to its client, used from the request's handler thread.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  virtual void respond(HttpResponse r) = 0;             // the whole response at once
  virtual bool start_stream(HttpResponse head) = 0;     // status and headers; body chunked
  virtual bool write(std::string_view data) = 0;        // a piece of the stream; false once gone
  virtual void end_stream() = 0;
  // True once the client has closed or reset its connection. Cheap: poll between steps.
  virtual bool client_gone() = 0;
};

struct HttpRoutes {
  // On an I/O thread once the head is in, before the body is read; a response returned here
  // (authentication, unknown path or method, draining) is sent at once and the connection is
  // closed if a body was announced, which is then never read. Must not block.
  std::function<std::optional<HttpResponse>(const HttpRequest& head)> check;
  // On the request's own thread with the whole request.
  std::function<void(const HttpRequest&, HttpExchange&)> handle;
  // The response for an error the HTTP layer finds itself (400, 411, 413, 415, 431, ...).
  std::function<HttpResponse(int status, const std::string& message)> error;
};

class HttpServer {
 public:
  HttpServer(HttpLimits limits, HttpRoutes routes);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; returns the port (port 0 picks a free one). Never shares a port (no
  // SO_REUSEPORT): throws nanovllm::Error "... address already in use" when it is taken.
  int listen(const std::string& host, int port);
  // Serves until stop(); returns once every handler thread has finished.
  void run();
  // Keeps answering (so /health can say 503) but closes idle keep-alive connections, and
  // every later response closes its connection.
  void begin_drain();
  // Closes every connection; handlers' writes fail from now on and run() returns.
  void stop();

  struct Impl;  // defined in http_server.cpp, with the connections that use it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace nanovllm::server
