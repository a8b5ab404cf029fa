// HttpServer: an event-driven HTTP/1.1 server (Boost.Asio/Beast) for Tidal's JSON APIs.
//
// Model: `io_threads` threads run the event loop (accept, read, write, keep-alive, timeouts);
// handlers run on a separate pool of `worker_threads`, so a handler may block (a sandbox exec, a
// model forward) without stalling other connections; handlers added with Router::add_inline()
// (quick ones: health, metrics) run on the I/O thread and are answered even while every worker is
// blocked. Event-driven streams (HttpResponse::async_stream) hold no thread: their chunks are
// queued and written by the I/O thread, and the socket is watched so a disconnect is seen at once.
// Requests on one connection are answered in order (no pipelining in flight: the next request is
// read after the response is written).
//
// Per request, before the handler runs:
//   - headers larger than max_header_bytes         -> 431, connection closed
//   - body larger than max_body_bytes               -> 413 (checked on Content-Length before the
//                                                      body is read, and while reading chunked)
//   - api_key set, path not in public_paths, and no
//     "Authorization: Bearer <api_key>" header       -> 401
//   - malformed HTTP                                -> 400, connection closed
//   - "Expect: 100-continue" is answered before the body is read.
// Then Router::dispatch (404/405/500 as documented in router.h).
//
// Lifecycle: construct, start() (binds; port 0 picks a free port, see port()), then stop() from any
// thread: stops accepting, closes idle keep-alive connections, lets in-flight requests (streams
// included) finish for up to `grace`, then closes everything and joins all threads. wait() blocks
// until stop() has completed. The destructor calls stop().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "tidal/core/status.h"
#include "tidal/http/router.h"

namespace tidal::http {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port
  int io_threads = 1;
  int worker_threads = 8;
  size_t max_body_bytes = 8u << 20;
  size_t max_header_bytes = 16u << 10;
  std::chrono::seconds idle_timeout{60};  // keep-alive connection idle / slow request limit
  std::string api_key;                    // empty: no authentication
  std::set<std::string> public_paths = {"/health"};  // served without the API key
};

class HttpServer {
 public:
  HttpServer(Router router, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the threads. Fails (kIoError) when the address cannot be bound.
  Status start();
  // The bound port (after start()).
  uint16_t port() const;
  // Graceful stop; idempotent; safe from any thread except a worker running a handler.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  // Blocks until stop() completed.
  void wait();
  // Requests being handled right now (for /metrics and tests).
  int64_t in_flight() const;

  struct Impl;  // implementation detail (http_server.cpp); public only so connections can name it

 private:
  std::shared_ptr<Impl> impl_;
};

// Raises this process's soft limit on open files (RLIMIT_NOFILE) to its hard limit, so a server
// can hold thousands of connections (the usual soft default is 1024). Returns the soft limit now
// in force.
uint64_t raise_open_files_limit();

}  // namespace tidal::http
