#include "tidal/http/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tidal::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = net::ip::tcp;

namespace {
class Session;

// Compares without an early exit on the first differing byte (the length may leak; the key may not).
bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}
}  // namespace

struct HttpServer::Impl {
  // NOTE: ioc is declared first so it is destroyed last: queued handlers own Sessions, whose
  // sockets must be destroyed while the io_context still exists.
  net::io_context ioc;
  Router router;
  HttpServerOptions opts;
  tcp::acceptor acceptor{ioc};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::unique_ptr<net::thread_pool> workers;
  std::vector<std::thread> io_threads;
  uint16_t port = 0;

  std::atomic<bool> stopping{false};  // no new requests; keep-alive off
  std::atomic<bool> aborting{false};  // grace is over: streams stop writing
  std::atomic<int64_t> in_flight{0};

  std::mutex mu;
  std::condition_variable cv;
  std::map<uint64_t, std::weak_ptr<Session>> sessions;  // guarded by mu
  uint64_t next_session = 0;
  bool stop_requested = false;
  bool stopped = false;
  int pending_closes = 0;

  Impl(Router r, HttpServerOptions o) : router(std::move(r)), opts(std::move(o)) {}
  void do_accept();
  void request_done() {
    in_flight.fetch_sub(1);
    std::lock_guard<std::mutex> lock(mu);
    cv.notify_all();
  }
};

namespace {

// Streams chunks synchronously on the connection's socket from a worker thread. Safe because the
// session does no I/O of its own while a handler owns it (busy_).
class SocketStreamWriter : public StreamWriter {
 public:
  SocketStreamWriter(tcp::socket& socket, const std::atomic<bool>& aborting, bool ok)
      : socket_(socket), aborting_(aborting), ok_(ok) {}
  bool write(std::string_view data) override {
    if (!ok_ || aborting_.load()) return ok_ = false;
    if (data.empty()) return true;
    beast::error_code ec;
    net::write(socket_, bhttp::make_chunk(net::const_buffer(data.data(), data.size())), ec);
    if (ec) ok_ = false;
    return ok_;
  }
  bool ok() const { return ok_; }

 private:
  tcp::socket& socket_;
  const std::atomic<bool>& aborting_;
  bool ok_;
};

// The ChunkSink of one event-driven stream. Holds the session weakly: a producer that outlives its
// connection (or the server) only gets false from write().
class SessionSink : public ChunkSink {
 public:
  SessionSink(std::shared_ptr<Session> session, HttpServer::Impl* server) : session_(session), server_(server) {}

  bool write(std::string data) override;
  void end() override;
  bool open() const override { return open_.load() && !server_aborting(); }
  void post(std::function<void()> fn) override;
  void on_close(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (cut_) {
      lock.unlock();
      if (fn) fn();
      return;
    }
    on_close_ = std::move(fn);
  }
  size_t pending_bytes() const override { return pending_.load(); }

  // Session side (strand).
  void sub_pending(size_t n) { pending_.fetch_sub(n); }
  // The stream is over; `cut`: before end(). The callback is dropped either way (it may hold the
  // producer, which holds this sink: the cycle ends here).
  void mark_closed(bool cut) {
    open_.store(false);
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn = std::move(on_close_);
      on_close_ = nullptr;
      if (!cut || cut_) return;
      cut_ = true;
    }
    if (fn) fn();
  }

 private:
  bool server_aborting() const;
  std::weak_ptr<Session> session_;
  HttpServer::Impl* server_;
  std::atomic<bool> open_{true};
  std::atomic<size_t> pending_{0};
  std::mutex mu_;
  bool cut_ = false;  // closed before end()
  std::function<void()> on_close_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl* server, uint64_t id)
      : stream_(std::move(socket)), server_(server), id_(id) {
    beast::error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);  // small JSON replies: no Nagle delay
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->do_read(); });
  }

  // Closes the connection unless a request is being handled (that one closes when done, since
  // the server is stopping). `force` closes a connection that is writing a plain response too.
  void close_if_idle(bool force) {
    net::post(stream_.get_executor(), [self = shared_from_this(), force] {
      if (!self->handler_running_ && (!self->busy_ || force)) self->close();
      std::lock_guard<std::mutex> lock(self->server_->mu);
      --self->server_->pending_closes;
      self->server_->cv.notify_all();
    });
  }

 private:
  const HttpServerOptions& opts() const { return server_->opts; }

  void do_read() {
    if (server_->stopping.load()) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(opts().max_header_bytes));
    parser_->body_limit(opts().max_body_bytes);
    stream_.expires_after(opts().idle_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->on_header(ec);
                             });
  }

  static bool is_disconnect(const beast::error_code& ec) {
    return ec == bhttp::error::end_of_stream || ec == net::error::eof ||
           ec == net::error::operation_aborted || ec == beast::error::timeout ||
           ec == net::error::connection_reset || ec == net::error::bad_descriptor;
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_error(ec);
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    if (!opts().api_key.empty()) {
      std::string path(req.target().substr(0, req.target().find('?')));
      if (!opts().public_paths.count(path)) {
        std::string auth(req[bhttp::field::authorization]);
        if (!constant_time_equal(auth, "Bearer " + opts().api_key)) {
          keep_alive_ = false;  // the body (if any) is left unread
          linger_ = true;
          HttpResponse r = HttpResponse::error(401, "missing or invalid API key (send 'Authorization: Bearer <key>')");
          r.headers.emplace_back("WWW-Authenticate", "Bearer");
          return write_response(std::move(r));
        }
      }
    }
    if (lower(std::string(req[bhttp::field::expect])) == "100-continue") {
      auto res = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, version_);
      bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
        if (ec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(opts().idle_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_error(beast::error_code ec) {
    if (is_disconnect(ec)) return close();
    keep_alive_ = false;
    linger_ = true;  // the rest of the request is unread
    if (ec == bhttp::error::header_limit) {
      return write_response(HttpResponse::error(
          431, "request headers exceed " + std::to_string(opts().max_header_bytes) + " bytes"));
    }
    if (ec == bhttp::error::body_limit) {
      return write_response(HttpResponse::error(
          413, "request body exceeds the limit of " + std::to_string(opts().max_body_bytes) + " bytes"));
    }
    write_response(HttpResponse::error(400, "malformed HTTP request: " + ec.message()));
  }

  void on_read(beast::error_code ec) {
    if (ec) return on_error(ec);
    auto& req = parser_->get();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    size_t q = request.target.find('?');
    auto path = url_decode(std::string_view(request.target).substr(0, q), false);
    auto query = parse_query(q == std::string::npos ? std::string_view{}
                                                    : std::string_view(request.target).substr(q + 1));
    if (!path || !query) {
      keep_alive_ = false;
      return write_response(HttpResponse::error(400, "malformed request target: " + request.target));
    }
    request.path = std::move(path).value();
    request.query = std::move(query).value();
    for (const auto& field : req) request.headers[lower(std::string(field.name_string()))] = std::string(field.value());
    request.body = std::move(req.body());
    request.remote = remote_;
    keep_alive_ = req.keep_alive();
    busy_ = true;
    handler_running_ = true;
    server_->in_flight.fetch_add(1);
    stream_.expires_never();
    if (server_->router.runs_inline(request)) {
      // Quick, non-blocking handlers (health, metrics) run here, so they are answered even while
      // every worker is busy.
      HttpResponse response = server_->router.dispatch(request);
      handler_running_ = false;
      if (response.async_stream) return start_async_stream(std::move(response));
      if (!response.stream) return write_response(std::move(response));
      response = HttpResponse::error(500, "internal error: a blocking stream from an inline handler");
      return write_response(std::move(response));
    }
    net::post(*server_->workers, [self = shared_from_this(), request = std::move(request)]() mutable {
      HttpResponse response = self->server_->router.dispatch(request);
      if (response.async_stream) {
        net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
          self->handler_running_ = false;
          self->start_async_stream(std::move(response));
        });
      } else if (response.stream) {
        self->run_stream(response);
        net::post(self->stream_.get_executor(), [self] {
          self->handler_running_ = false;
          self->finish(!self->keep_alive_);
        });
      } else {
        net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
          self->handler_running_ = false;
          self->write_response(std::move(response));
        });
      }
    });
  }

  void fill_headers(bhttp::header<false>& h, const HttpResponse& r) {
    h.set(bhttp::field::server, "tidal");
    h.set(bhttp::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) h.set(k, v);
  }

  // Runs on a worker thread (see SocketStreamWriter).
  void run_stream(HttpResponse& r) {
    bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(r.status), version_};
    fill_headers(res.base(), r);
    res.keep_alive(keep_alive_ && !server_->stopping.load());
    res.chunked(true);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    beast::error_code ec;
    bhttp::write_header(stream_.socket(), sr, ec);
    SocketStreamWriter writer(stream_.socket(), server_->aborting, !ec);
    try {
      r.stream(writer);
    } catch (...) {
      keep_alive_ = false;  // the stream is cut; the client sees no last chunk
      return;
    }
    if (writer.ok()) net::write(stream_.socket(), bhttp::make_chunk_last(), ec);
    if (!writer.ok() || ec || !res.keep_alive()) keep_alive_ = false;
  }

  // ---- event-driven streams (HttpResponse::async_stream); everything below runs on the strand ----

  void start_async_stream(HttpResponse r) {
    if (closed_) return;
    chunked_ = version_ >= 11;
    if (!chunked_) keep_alive_ = false;
    const bool keep = keep_alive_ && !server_->stopping.load();
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + http_reason(r.status) + "\r\n";
    head += "Server: tidal\r\nContent-Type: " + r.content_type + "\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    if (chunked_) head += "Transfer-Encoding: chunked\r\n";
    head += keep ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    if (!keep) keep_alive_ = false;
    sink_ = std::make_shared<SessionSink>(shared_from_this(), server_);
    queue_.push_back(std::move(head));
    flush();
    watch();
    try {
      r.async_stream(sink_);
    } catch (...) {
      keep_alive_ = false;
      close();
    }
  }

  // Producer side, posted by SessionSink.
  void stream_write(std::string data) {
    if (closed_ || !sink_) return;
    queued_payload_ += data.size();
    if (chunked_) {
      char size[20];
      std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
      data.insert(0, size);
      data += "\r\n";
    }
    queue_.push_back(std::move(data));
    flush();
  }

  void stream_end() {
    if (closed_ || !sink_ || end_requested_) return;
    end_requested_ = true;
    if (chunked_) queue_.push_back("0\r\n\r\n");
    flush();
  }

  void flush() {
    if (writing_ || closed_) return;
    if (queue_.empty()) {
      if (end_requested_) end_async_stream(/*peer_gone=*/false);
      return;
    }
    out_.clear();
    for (auto& q : queue_) out_ += q;
    queue_.clear();
    writing_ = true;
    const size_t payload = std::exchange(queued_payload_, 0);
    net::async_write(stream_, net::buffer(out_), [self = shared_from_this(), payload](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (self->sink_) self->sink_->sub_pending(payload);
      if (ec) return self->close();  // peer gone (close() ends the stream)
      self->flush();
    });
  }

  // Reads while streaming: EOF or an error means the client went away; bytes (a pipelined next
  // request) are kept in buffer_ for do_read().
  void watch() {
    if (watching_ || closed_ || buffer_.size() >= kMaxReadAhead) return;
    watching_ = true;
    stream_.socket().async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->watching_ = false;
      if (!ec) self->buffer_.commit(n);
      if (self->sink_) {  // still streaming
        if (ec) return self->close();
        return self->watch();
      }
      // The stream ended while this read was pending (it was cancelled, see end_async_stream).
      if (self->closed_) return;
      self->finish(!self->keep_alive_ || (ec && ec != net::error::operation_aborted));
    });
  }

  // The stream is over: written to the end (peer_gone = false) or cut.
  void end_async_stream(bool peer_gone) {
    std::shared_ptr<SessionSink> sink = std::move(sink_);
    sink_.reset();
    if (!sink) return;
    sink->mark_closed(peer_gone);
    queue_.clear();
    end_requested_ = false;
    if (peer_gone) {
      if (busy_) {
        busy_ = false;
        server_->request_done();
      }
      return;  // close() called us, or will be called
    }
    if (watching_) {
      // finish() runs from the watch handler once the read is cancelled (one read at a time).
      beast::error_code ec;
      stream_.socket().cancel(ec);
      return;
    }
    finish(!keep_alive_);
  }

 public:
  void post_to_strand(std::function<void()> fn) {
    net::post(stream_.get_executor(), [self = shared_from_this(), fn = std::move(fn)] {
      if (!self->closed_) fn();
    });
  }
  void post_write(std::string data) {
    net::post(stream_.get_executor(), [self = shared_from_this(), data = std::move(data)]() mutable {
      self->stream_write(std::move(data));
    });
  }
  void post_end() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->stream_end(); });
  }

 private:
  void write_response(HttpResponse r) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(r.status), version_);
    fill_headers(res->base(), r);
    res->body() = std::move(r.body);
    res->keep_alive(keep_alive_ && !server_->stopping.load());
    res->prepare_payload();
    stream_.expires_after(opts().idle_timeout);
    bhttp::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      self->finish(ec || res->need_eof());
    });
  }

  void finish(bool close_after) {
    if (busy_) {
      busy_ = false;
      server_->request_done();
    }
    if (close_after && linger_ && !server_->stopping.load()) return linger_close();
    if (close_after || server_->stopping.load()) return close();
    do_read();
  }

  // After an error response to a request whose body was not read (401, 413, 431, 400): stop
  // sending, then read and drop what the client still sends (up to 2 s / 64 MiB) before closing.
  // Closing at once with unread data makes the kernel send a reset, and the client may lose the
  // error response we just sent.
  void linger_close() {
    linger_ = false;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    drain(std::make_shared<std::array<char, 16384>>(), 0);
  }
  void drain(std::shared_ptr<std::array<char, 16384>> buf, size_t total) {
    stream_.async_read_some(net::buffer(*buf), [self = shared_from_this(), buf, total](beast::error_code ec, size_t n) {
      if (ec || total + n > (64u << 20)) return self->close();
      self->drain(buf, total + n);
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (sink_) end_async_stream(/*peer_gone=*/true);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->sessions.erase(id_);
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* server_;
  uint64_t id_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool busy_ = false;             // a request was read and its response is not yet written
  bool handler_running_ = false;  // a worker owns the request (and, while streaming, the socket)
  bool closed_ = false;
  bool linger_ = false;  // close with linger_close()
  // Event-driven stream state (strand only).
  std::shared_ptr<SessionSink> sink_;
  std::string out_;              // bytes being written
  std::deque<std::string> queue_;  // framed chunks waiting for the write in progress
  size_t queued_payload_ = 0;    // producer bytes in queue_ (for pending_bytes())
  bool writing_ = false;
  bool end_requested_ = false;   // the producer called end()
  bool chunked_ = true;          // false for HTTP/1.0 peers: the body ends at connection close
  bool watching_ = false;        // a read is pending that notices the peer going away
  static constexpr size_t kMaxReadAhead = 64u << 10;  // bytes of a next request read while streaming
};

bool SessionSink::server_aborting() const { return server_->aborting.load(); }

bool SessionSink::write(std::string data) {
  if (!open()) return false;
  if (data.empty()) return true;
  auto s = session_.lock();
  if (!s) {
    open_.store(false);
    return false;
  }
  pending_.fetch_add(data.size());
  s->post_write(std::move(data));
  return true;
}

void SessionSink::end() {
  if (!open_.exchange(false)) return;
  if (auto s = session_.lock()) s->post_end();
}

void SessionSink::post(std::function<void()> fn) {
  if (auto s = session_.lock()) s->post_to_strand(std::move(fn));
}

}  // namespace

void HttpServer::Impl::do_accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    } else if (!stopping.load()) {
      std::shared_ptr<Session> session;
      {
        std::lock_guard<std::mutex> lock(mu);
        uint64_t id = next_session++;
        session = std::make_shared<Session>(std::move(socket), this, id);
        sessions[id] = session;
      }
      session->start();
    }
    if (!stopping.load()) do_accept();
  });
}

HttpServer::HttpServer(Router router, HttpServerOptions options)
    : impl_(std::make_shared<Impl>(std::move(router), std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  Impl& s = *impl_;
  beast::error_code ec;
  auto address = net::ip::make_address(s.opts.host, ec);
  if (ec) return invalid_argument("bad listen address '" + s.opts.host + "': " + ec.message());
  tcp::endpoint endpoint{address, s.opts.port};
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return io_error("cannot listen on " + s.opts.host + ":" + std::to_string(s.opts.port) + ": " + ec.message());
  }
  s.port = s.acceptor.local_endpoint().port();
  s.workers = std::make_unique<net::thread_pool>(std::max(1, s.opts.worker_threads));
  s.guard.emplace(net::make_work_guard(s.ioc));
  s.do_accept();
  for (int i = 0; i < std::max(1, s.opts.io_threads); ++i) {
    s.io_threads.emplace_back([&s] { s.ioc.run(); });
  }
  return Status::ok();
}

uint16_t HttpServer::port() const { return impl_->port; }

int64_t HttpServer::in_flight() const { return impl_->in_flight.load(); }

void HttpServer::stop(std::chrono::milliseconds grace) {
  Impl& s = *impl_;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    if (s.stop_requested) {
      s.cv.wait(lock, [&] { return s.stopped; });
      return;
    }
    s.stop_requested = true;
  }
  if (s.io_threads.empty()) {  // never started
    std::lock_guard<std::mutex> lock(s.mu);
    s.stopped = true;
    s.cv.notify_all();
    return;
  }
  s.stopping.store(true);
  auto close_sessions = [&s](bool force) {
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      for (auto& [id, weak] : s.sessions) {
        if (auto p = weak.lock()) live.push_back(std::move(p));
      }
      s.pending_closes += static_cast<int>(live.size());
    }
    for (auto& p : live) p->close_if_idle(force);
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait_for(lock, std::chrono::seconds(2), [&] { return s.pending_closes <= 0; });
  };
  net::post(s.ioc, [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
  });
  close_sessions(false);
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait_for(lock, grace, [&] { return s.in_flight.load() == 0; });
  }
  s.aborting.store(true);
  s.workers->join();  // handlers are bounded (they own their timeouts); streams now stop writing
  close_sessions(true);
  s.guard.reset();
  s.ioc.stop();
  for (auto& t : s.io_threads) t.join();
  std::lock_guard<std::mutex> lock(s.mu);
  s.stopped = true;
  s.cv.notify_all();
}

uint64_t raise_open_files_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : uint64_t(rl.rlim_cur);
}

void HttpServer::wait() {
  std::unique_lock<std::mutex> lock(impl_->mu);
  impl_->cv.wait(lock, [&] { return impl_->stopped; });
}

}  // namespace tidal::http
