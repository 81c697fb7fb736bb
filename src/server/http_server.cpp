// The HTTP layer over Boost.Beast: one Connection per socket, driven on its Asio strand through
// idle -> head -> body -> busy (a handler thread answers) -> idle again (keep-alive) or closed.
// A single timer per connection carries whichever deadline applies to the current phase.
#include "server/http_server.h"

#include <poll.h>
#include <sys/resource.h>
#include <zlib.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "nanovllm/error.h"

namespace nanovllm::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(beast::string_view(k.data(), k.size()), beast::string_view(name.data(), name.size()))) return v;
  }
  return "";
}

namespace {

std::string to_string(beast::string_view s) { return std::string(s.data(), s.size()); }

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
}

// Bytes a connection reads ahead while its request is being answered (pipelined requests).
constexpr std::size_t kReadAhead = 64u << 10;

// X-Request-Id ties a request's lines in a router's log to the replica's answer: a client's or
// router's id comes back as sent; without one the server makes one. Only visible ASCII, as an
// id that goes into logs and headers must not carry control bytes.
constexpr std::size_t kMaxRequestIdBytes = 128;

bool valid_request_id(std::string_view id) {
  if (id.size() > kMaxRequestIdBytes) return false;
  for (const char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char id[33];
  std::snprintf(id, sizeof id, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return id;
}

// Status line and headers; `length` < 0 means a chunked body.
std::string response_head(const HttpResponse& r, long long length, bool close, const std::string& request_id) {
  std::string h = "HTTP/1.1 " + std::to_string(r.status) + " " +
                  to_string(bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(r.status)))) + "\r\n";
  if (!r.content_type.empty()) h += "Content-Type: " + r.content_type + "\r\n";
  for (const auto& [k, v] : r.headers) h += k + ": " + v + "\r\n";
  if (!request_id.empty()) h += "X-Request-Id: " + request_id + "\r\n";
  h += length < 0 ? std::string("Transfer-Encoding: chunked\r\n") : "Content-Length: " + std::to_string(length) + "\r\n";
  if (close) h += "Connection: close\r\n";
  return h + "\r\n";
}

// The body decoded per Content-Encoding ("gzip", "x-gzip", "deflate"), at most `limit` bytes:
// the limit applies to what the body expands to, not to what was sent (a 194 KB gzip body
// used to expand to 200 MB). Returns an HTTP status: 200, 400 (corrupt), 413 (too large).
int inflate_body(std::string& body, std::size_t limit) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 32) != Z_OK) return 400;  // 15 + 32: zlib or gzip header
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(body.data());
  zs.avail_in = static_cast<uInt>(body.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    const std::size_t have = out.size();
    if (have >= limit + 1) break;
    out.resize(std::min(limit + 1, have + (64u << 10)));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + have);
    zs.avail_out = static_cast<uInt>(out.size() - have);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(out.size() - zs.avail_out);
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // truncated input
  }
  inflateEnd(&zs);
  if (out.size() > limit) return 413;
  if (rc != Z_STREAM_END || zs.avail_in != 0) return 400;
  body = std::move(out);
  return 200;
}

// A socket error, the deadline (it closes the socket), or a client that left mid-request:
// nobody to answer. Any other parser error is a malformed request, answered with its status.
bool nobody_to_answer(error_code ec) {
  return ec.category() != bhttp::make_error_code(bhttp::error::end_of_stream).category() ||
         ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message;
}

// Status and message for a request the parser refused.
std::pair<int, std::string> parse_failure(error_code ec) {
  if (ec == bhttp::error::body_limit) return {413, "the request body is too large"};
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
    return {431, "the request head (line and headers) is too large"};
  if (ec == bhttp::error::bad_content_length) return {400, "invalid or conflicting Content-Length"};
  if (ec == bhttp::error::bad_transfer_encoding) return {400, "invalid Transfer-Encoding (or both it and Content-Length)"};
  return {400, "malformed HTTP request: " + ec.message()};
}

}  // namespace

class Connection;

struct HttpServer::Impl {
  Impl(HttpLimits l, HttpRoutes r) : limits(l), routes(std::move(r)) {}

  HttpLimits limits;
  HttpRoutes routes;
  std::atomic<bool> draining{false}, stopped{false};

  mutable std::mutex mu;
  std::unordered_map<std::string, int> per_client;  // open connections by address
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  int handlers = 0;                                 // handler threads alive
  std::condition_variable handlers_done;

  // Declared last, destroyed first: pending operations own Connections, whose destructors
  // still need the maps above.
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  asio::steady_timer accept_pause{ioc};

  void accept();
  // Counts a new connection in, or answers why it cannot be served (429 / 503).
  std::optional<HttpResponse> admit(const std::string& client);
  void forget(Connection* c, const std::string& client);
  std::vector<std::shared_ptr<Connection>> open() const;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Impl* server, tcp::socket socket, std::string client)
      : server_(server), limits_(server_->limits), socket_(std::move(socket)),
        timer_(socket_.get_executor()), buffer_(limits_.max_header_bytes + kReadAhead), client_(std::move(client)),
        fd_(socket_.native_handle()) {}
  ~Connection() { server_->forget(this, client_); }

  void start() { wait_for_request(/*first=*/true); }

  // From handler threads: queues bytes and waits until written. `last` ends the response.
  bool send(std::string bytes, bool last, bool close_after);

  bool gone() {
    if (gone_) return true;
    // Once the client's FIN arrived and a probe was sent, a client that closed (rather than
    // half-closed) has answered the probe with a reset: the socket reports HUP or ERR.
    if (probed_) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) gone_ = true;
    }
    return gone_;
  }

  // Draining: a connection that has no request in progress closes now.
  void close_if_idle() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->phase_ == kIdle || self->phase_ == kHead) self->close();
    });
  }
  void close_now() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  const std::string& request_id() const { return request_id_; }

  // Whether the response to the current request ends its connection (set before dispatch).
  bool closes_after(bool asked) const { return asked || !keep_alive_ || server_->draining; }

 private:
  enum Phase { kIdle, kHead, kBody, kBusy, kClosing };
  struct Out {
    std::string bytes;
    bool last, close_after;
    std::shared_ptr<std::promise<bool>> done;
  };

  void wait_for_request(bool first);
  void read_head();
  void on_head(error_code ec);
  void on_body(error_code ec);
  void dispatch();
  void watch();
  void probe();
  void write_next();
  void response_finished(bool close_after);
  void next_request();
  void reject(int status, const std::string& message);
  void linger_close();
  void discard();
  void close();
  void arm(double s);
  void disarm() { timer_.expires_at(asio::steady_timer::time_point::max()); }
  bool body_pending() const { return parser_ && !parser_->is_done(); }

  HttpServer::Impl* server_;
  const HttpLimits& limits_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string client_;
  const int fd_;
  std::string request_id_;  // of the request being answered; "" before its head is read

  Phase phase_ = kIdle;
  bool reading_ = false;       // a read-ahead is in flight
  bool peer_eof_ = false;      // the client sent FIN (closed, or only half-closed)
  bool keep_alive_ = true;
  bool response_started_ = false;
  bool writing_ = false;
  unsigned version_ = 11;
  std::deque<Out> out_;
  std::atomic<bool> gone_{false}, probed_{false};
};

void Connection::arm(double s) {
  timer_.expires_after(seconds(s));
  timer_.async_wait([self = shared_from_this()](error_code ec) {
    // A re-armed timer may have fired just before: only a deadline that really passed counts.
    if (ec == asio::error::operation_aborted || self->timer_.expiry() > std::chrono::steady_clock::now()) return;
    self->close();
  });
}

void Connection::wait_for_request(bool first) {
  phase_ = kIdle;
  if (buffer_.size() > 0) return read_head();
  if (peer_eof_ || (!first && server_->draining)) return close();
  // A new connection must start its request within the head deadline; a kept-alive one may idle.
  arm(first ? limits_.header_seconds : limits_.idle_seconds);
  reading_ = true;
  socket_.async_read_some(buffer_.prepare(kReadAhead), [self = shared_from_this()](error_code ec, std::size_t n) {
    self->reading_ = false;
    self->buffer_.commit(n);
    if (ec || self->phase_ != kIdle) return self->close();
    self->read_head();
  });
}

void Connection::read_head() {
  phase_ = kHead;
  request_id_.clear();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
  parser_->body_limit(limits_.max_body_bytes);  // what is sent; decoding is limited separately
  arm(limits_.header_seconds);
  bhttp::async_read_header(socket_, buffer_, *parser_,
                           [self = shared_from_this()](error_code ec, std::size_t) { self->on_head(ec); });
}

void Connection::on_head(error_code ec) {
  if (phase_ != kHead) return;
  if (ec) {
    if (nobody_to_answer(ec)) return close();
    const auto [status, message] = parse_failure(ec);
    return reject(status, message);
  }
  const auto& msg = parser_->get();
  version_ = msg.version();
  HttpRequest head;
  head.method = to_string(msg.method_string());
  head.path = to_string(msg.target().substr(0, msg.target().find('?')));
  head.client = client_;
  for (const auto& f : msg) head.headers.emplace_back(to_string(f.name_string()), to_string(f.value()));
  request_id_ = head.header("X-Request-Id");
  if (!valid_request_id(request_id_)) {
    request_id_.clear();
    return reject(400, "X-Request-Id must be at most " + std::to_string(kMaxRequestIdBytes) +
                           " visible ASCII characters");
  }
  if (request_id_.empty()) request_id_ = new_request_id();

  if (msg.count(bhttp::field::transfer_encoding) && !parser_->chunked())
    return reject(501, "unsupported Transfer-Encoding '" + head.header("Transfer-Encoding") + "' (only chunked)");
  const std::string encoding = head.header("Content-Encoding");
  if (!encoding.empty() && !beast::iequals(encoding, "identity") && !beast::iequals(encoding, "gzip") &&
      !beast::iequals(encoding, "x-gzip") && !beast::iequals(encoding, "deflate"))
    return reject(415, "unsupported Content-Encoding '" + encoding + "' (gzip, deflate or identity)");
  if (std::optional<HttpResponse> early = server_->routes.check(head)) {
    early->close = early->close || body_pending() || server_->draining;
    keep_alive_ = !early->close;
    phase_ = kBusy;
    disarm();
    const std::string body = early->body;
    out_.push_back({response_head(*early, static_cast<long long>(body.size()), early->close, request_id_) + body, true, early->close, nullptr});
    if (!writing_) write_next();
    return;
  }
  if (!body_pending()) return dispatch();
  const std::string expect = head.header("Expect");
  if (!expect.empty()) {
    if (!beast::iequals(expect, "100-continue")) return reject(417, "unsupported Expect '" + expect + "'");
    // curl waits for this before sending a large body.
    if (version_ >= 11) out_.push_back({"HTTP/1.1 100 Continue\r\n\r\n", false, false, nullptr});
    if (!writing_) write_next();
  }
  phase_ = kBody;
  arm(limits_.body_seconds);
  bhttp::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) { self->on_body(ec); });
}

void Connection::on_body(error_code ec) {
  if (phase_ != kBody) return;
  if (ec == bhttp::error::body_limit) return reject(413, "the request body is too large");
  if (ec) {
    if (nobody_to_answer(ec)) return close();
    return reject(400, "malformed request body: " + ec.message());
  }
  const std::string encoding = to_string(parser_->get()[bhttp::field::content_encoding]);
  if (!encoding.empty() && !beast::iequals(encoding, "identity")) {
    const int status = inflate_body(parser_->get().body(), limits_.max_body_bytes);
    if (status == 413) return reject(413, "the request body is too large once decoded (" + encoding + ")");
    if (status != 200) return reject(400, "the request body is not valid " + encoding);
  }
  dispatch();
}

// The complete request goes to a thread of its own; meanwhile the connection reads ahead, so
// a client that goes away is noticed and pipelined requests wait in the buffer.
void Connection::dispatch() {
  phase_ = kBusy;
  disarm();
  auto& msg = parser_->get();
  HttpRequest req;
  req.method = to_string(msg.method_string());
  req.path = to_string(msg.target().substr(0, msg.target().find('?')));
  req.client = client_;
  for (const auto& f : msg) req.headers.emplace_back(to_string(f.name_string()), to_string(f.value()));
  req.body = std::move(msg.body());
  keep_alive_ = parser_->keep_alive() && version_ >= 11;
  parser_.reset();
  response_started_ = false;
  watch();

  class Exchange : public HttpExchange {
   public:
    explicit Exchange(std::shared_ptr<Connection> c) : c_(std::move(c)) {}
    void respond(HttpResponse r) override {
      if (state_ != kNone) return;
      state_ = kDone;
      const bool close = c_->closes_after(r.close);
      c_->send(response_head(r, static_cast<long long>(r.body.size()), close, c_->request_id()) + r.body, true, close);
    }
    bool start_stream(HttpResponse head) override {
      if (state_ != kNone) return false;
      state_ = kStreaming;
      close_ = c_->closes_after(head.close);
      return c_->send(response_head(head, -1, close_, c_->request_id()), false, false);
    }
    bool write(std::string_view data) override {
      if (state_ != kStreaming) return false;
      if (data.empty()) return !c_->gone();
      char size[24];
      std::snprintf(size, sizeof size, "%zx\r\n", data.size());
      return c_->send(size + std::string(data) + "\r\n", false, false);
    }
    void end_stream() override {
      if (state_ != kStreaming) return;
      state_ = kDone;
      c_->send("0\r\n\r\n", true, close_);
    }
    bool client_gone() override { return c_->gone(); }
    // What the handler left unfinished: no response at all, or a stream cut short.
    void finish(HttpServer::Impl& s) {
      if (state_ == kNone) respond(s.routes.error(500, "the handler gave no response"));
      if (state_ == kStreaming) c_->close_now();
    }

   private:
    enum { kNone, kStreaming, kDone } state_ = kNone;
    bool close_ = false;
    std::shared_ptr<Connection> c_;
  };

  HttpServer::Impl& s = *server_;
  auto handler_done = [&s] {
    {
      std::lock_guard lock(s.mu);
      --s.handlers;
    }
    s.handlers_done.notify_all();
  };
  {
    std::lock_guard lock(s.mu);
    ++s.handlers;
  }
  try {
    std::thread([self = shared_from_this(), req = std::move(req), handler_done] {
      HttpServer::Impl& s = *self->server_;
      Exchange ex(self);
      try {
        s.routes.handle(req, ex);
      } catch (const std::exception& e) {
        ex.respond(s.routes.error(500, std::string("internal error: ") + e.what()));
      }
      ex.finish(s);
      handler_done();
    }).detach();
  } catch (const std::system_error&) {  // out of threads: refuse this one, keep serving
    handler_done();
    reject(503, "the server is out of threads; retry later");
  }
}

// Reads ahead while the request is answered: EOF or a reset tells that the client left.
void Connection::watch() {
  if (reading_ || peer_eof_ || phase_ == kClosing || buffer_.size() >= kReadAhead) return;
  reading_ = true;
  socket_.async_read_some(buffer_.prepare(kReadAhead - buffer_.size()), [self = shared_from_this()](error_code ec, std::size_t n) {
    self->reading_ = false;
    self->buffer_.commit(n);
    if (self->phase_ == kClosing) return ec ? self->close() : self->discard();
    if (self->phase_ == kIdle) {  // the response has ended (and cancelled this read)
      if (ec == asio::error::eof) self->peer_eof_ = true;
      else if (ec && ec != asio::error::operation_aborted) return self->close();
      return self->next_request();
    }
    if (ec == asio::error::eof) {
      self->peer_eof_ = true;
      if (!self->response_started_) self->probe();
      return;
    }
    if (ec) {
      if (ec != asio::error::operation_aborted) self->gone_ = true;
      return;
    }
    self->watch();
  });
}

// EOF alone cannot tell a client that closed from one that only shut down its sending side
// and still waits for the answer. An interim "100 Continue" (which HTTP/1.1 clients skip)
// tells them apart: a closed socket answers it with a reset, which gone() then sees.
void Connection::probe() {
  if (version_ < 11) return;
  out_.push_back({"HTTP/1.1 100 Continue\r\n\r\n", false, false, nullptr});
  if (!writing_) write_next();
  probed_ = true;
}

bool Connection::send(std::string bytes, bool last, bool close_after) {
  auto done = std::make_shared<std::promise<bool>>();
  std::future<bool> result = done->get_future();
  asio::post(socket_.get_executor(), [self = shared_from_this(), bytes = std::move(bytes), last, close_after, done]() mutable {
    if (self->phase_ == kClosing) return done->set_value(false);
    self->response_started_ = true;
    self->out_.push_back({std::move(bytes), last, close_after, std::move(done)});
    if (!self->writing_) self->write_next();
  });
  // The server may stop with this write still queued: then nobody will answer.
  while (result.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (server_->stopped) return false;
  }
  try {
    return result.get();
  } catch (const std::future_error&) {
    return false;
  }
}

void Connection::write_next() {
  if (out_.empty() || phase_ == kClosing) {
    writing_ = false;
    return;
  }
  writing_ = true;
  if (phase_ == kBusy) arm(limits_.write_seconds);
  asio::async_write(socket_, asio::buffer(out_.front().bytes), [self = shared_from_this()](error_code ec, std::size_t) {
    if (self->out_.empty()) return;
    Out o = std::move(self->out_.front());
    self->out_.pop_front();
    if (ec) {
      self->gone_ = true;
      if (o.done) o.done->set_value(false);
      return self->close();
    }
    if (o.done) o.done->set_value(true);
    // The write deadline covers a write in progress only: a stream may wait minutes for tokens.
    if (self->out_.empty() && self->phase_ == kBusy) self->disarm();
    if (o.last) self->response_finished(o.close_after);
    self->write_next();
  });
}

void Connection::response_finished(bool close_after) {
  disarm();
  if (close_after || !keep_alive_ || server_->draining) return linger_close();
  phase_ = kIdle;
  // The read-ahead in flight would wait for bytes that may never come (the next request can
  // be in the buffer already): cancel it; its completion goes on with the next request.
  if (reading_) return socket_.cancel();
  next_request();
}

void Connection::next_request() { wait_for_request(/*first=*/false); }

void Connection::reject(int status, const std::string& message) {
  HttpResponse r = server_->routes.error(status, message);
  phase_ = kBusy;
  keep_alive_ = false;
  disarm();
  out_.push_back({response_head(r, static_cast<long long>(r.body.size()), true, request_id_) + r.body, true, true, nullptr});
  if (!writing_) write_next();
}

// Closing right after the answer would reset the connection if the client is still sending
// (a body we refused): the reset can destroy the answer before it is read. So: stop sending,
// drain what arrives for a moment, then close.
void Connection::linger_close() {
  phase_ = kClosing;
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  arm(2.0);
  discard();
}

// Reads and drops what arrives until EOF, an error or the linger deadline closes the socket.
void Connection::discard() {
  if (reading_) return;  // the read in flight comes back here
  reading_ = true;
  buffer_.clear();
  socket_.async_read_some(buffer_.prepare(kReadAhead), [self = shared_from_this()](error_code ec, std::size_t) {
    self->reading_ = false;
    if (ec) return self->close();
    self->discard();
  });
}

void Connection::close() {
  gone_ = true;
  phase_ = kClosing;
  error_code ec;
  timer_.cancel();
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  for (Out& o : out_) {
    if (o.done) o.done->set_value(false);
  }
  out_.clear();
}

std::optional<HttpResponse> HttpServer::Impl::admit(const std::string& client) {
  std::lock_guard lock(mu);
  if (static_cast<int>(connections.size()) >= limits.max_connections) {
    return routes.error(503, "too many connections (" + std::to_string(limits.max_connections) + ")");
  }
  if (per_client[client] >= limits.max_connections_per_client) {
    return routes.error(429, "too many connections from " + client + " (" +
                                 std::to_string(limits.max_connections_per_client) + ")");
  }
  ++per_client[client];
  return std::nullopt;
}

void HttpServer::Impl::forget(Connection* c, const std::string& client) {
  std::lock_guard lock(mu);
  connections.erase(c);
  if (--per_client[client] <= 0) per_client.erase(client);
}

void HttpServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors, typically: pause rather than spin, then go on.
      accept_pause.expires_after(std::chrono::milliseconds(50));
      accept_pause.async_wait([this](error_code) { accept(); });
      return;
    }
    error_code addr_ec;
    const tcp::endpoint peer = socket.remote_endpoint(addr_ec);
    if (!addr_ec) {
      const std::string client = peer.address().to_string();
      if (std::optional<HttpResponse> refused = admit(client)) {
        refused->close = true;
        const std::string bytes = response_head(*refused, static_cast<long long>(refused->body.size()), true, "") + refused->body;
        error_code wec;
        socket.non_blocking(true, wec);
        asio::write(socket, asio::buffer(bytes), wec);  // a fresh socket's send buffer takes it
        socket.shutdown(tcp::socket::shutdown_send, wec);
        socket.close(wec);
      } else {
        auto c = std::make_shared<Connection>(this, std::move(socket), client);
        {
          std::lock_guard lock(mu);
          connections[c.get()] = c;
        }
        c->start();
      }
    }
    accept();
  });
}

std::vector<std::shared_ptr<Connection>> HttpServer::Impl::open() const {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(mu);
  for (const auto& [raw, weak] : connections) {
    if (auto c = weak.lock()) out.push_back(std::move(c));
  }
  return out;
}

// Each connection holds a descriptor: let the caps, not the soft limit (often 1024), decide.
void raise_fd_limit(int connections) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  const rlim_t want = static_cast<rlim_t>(connections) + 256;
  if (r.rlim_cur >= want) return;
  r.rlim_cur = r.rlim_max == RLIM_INFINITY ? want : std::min(want, r.rlim_max);
  setrlimit(RLIMIT_NOFILE, &r);
}

HttpServer::HttpServer(HttpLimits limits, HttpRoutes routes)
    : impl_(std::make_shared<Impl>(limits, std::move(routes))) {}

HttpServer::~HttpServer() { stop(); }

int HttpServer::listen(const std::string& host, int port) {
  raise_fd_limit(impl_->limits.max_connections);
  const std::string where = host + ":" + std::to_string(port);
  error_code ec;
  tcp::resolver resolver(impl_->ioc);
  const auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || found.empty()) throw Error("cannot listen on " + where + ": " + (ec ? ec.message() : "no such address"));
  const tcp::endpoint endpoint = found.begin()->endpoint();
  tcp::acceptor& a = impl_->acceptor;
  a.open(endpoint.protocol(), ec);
  // SO_REUSEADDR only (a restart may bind over TIME_WAIT); never SO_REUSEPORT, with which a
  // second server would bind the same port and split the traffic.
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    a.close(ignored);
    throw Error("cannot listen on " + where + ": " +
                (ec == asio::error::address_in_use ? std::string("address already in use") : ec.message()));
  }
  return a.local_endpoint().port();
}

void HttpServer::run() {
  Impl& s = *impl_;
  s.accept();
  std::thread second([&s] { s.ioc.run(); });
  s.ioc.run();
  second.join();
  error_code ec;
  s.acceptor.close(ec);
  // Handlers hold connections and the routes' state: wait for them. Their writes fail now
  // (stopped), so they end once the engine has answered or aborted their requests.
  std::unique_lock lock(s.mu);
  s.handlers_done.wait(lock, [&s] { return s.handlers == 0; });
}

void HttpServer::begin_drain() {
  impl_->draining = true;
  for (const auto& c : impl_->open()) c->close_if_idle();
}

void HttpServer::stop() {
  impl_->stopped = true;
  impl_->ioc.stop();
}

}  // namespace nanovllm::server
