// HttpResponse: what a handler returns: a whole body, or a stream of chunks in one of two styles.
//
// A plain response carries `body`.
//
// A blocking stream sets `stream`: the server sends the status and headers with
// `Transfer-Encoding: chunked`, then calls `stream(writer)` on a worker thread; each writer.write()
// sends one chunk synchronously. The stream function may block (e.g. while a command runs); it
// should stop early when write() returns false (the client went away). It holds a worker thread
// for the stream's whole life.
//
// An event-driven stream sets `async_stream`: the server queues the headers, then calls
// `async_stream(sink)` once on the connection's I/O strand (it must not block) and the worker is
// free again. The producer keeps the ChunkSink and writes from any thread; chunks are queued and
// written by the I/O thread, so no producer ever blocks on a slow socket. While the stream runs the
// server watches the socket, so a client that disconnects is noticed at once (on_close), not only
// at the next write. Use this for many long-lived streams (thousands of SSE connections).
//
// Errors use one JSON shape everywhere (OpenAI-compatible):
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": 400}}
// `param` names the request field at fault (null when the error is about no single field); `code`
// is the HTTP status (as vLLM does; OpenAI's own codes are strings or null).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"

namespace tidal::http {

// Passed to a streaming response's function. Not thread-safe: one writer per response.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Sends `data` as one chunk (empty data is skipped). Returns false once the peer is gone or the
  // server is stopping; later writes are no-ops that return false.
  virtual bool write(std::string_view data) = 0;
  // Sends one Server-Sent Event: optional "event: <name>", then "data: <line>" per line of `data`.
  bool write_event(std::string_view data, std::string_view event = {});
};

// The producer's handle on an event-driven stream (HttpResponse::async_stream). Thread-safe.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // Queues one chunk (empty data is skipped); never blocks. Returns false once the stream is
  // closed (peer gone, server aborting, or end() called); the data is then dropped.
  virtual bool write(std::string data) = 0;
  // Ends the response once the queued chunks are written. Idempotent.
  virtual void end() = 0;
  // True until the peer disconnects, the server aborts the stream, or end() is called.
  virtual bool open() const = 0;
  // Runs fn on the connection's I/O strand, serialized with the sink's own work; dropped when the
  // connection is already closed.
  virtual void post(std::function<void()> fn) = 0;
  // fn runs once if the stream closes before end() (peer gone, server aborting); at once when
  // that already happened. One callback per sink (a later call replaces it).
  virtual void on_close(std::function<void()> fn) = 0;
  // Bytes queued and not yet written to the socket.
  virtual size_t pending_bytes() const = 0;
};

// One Server-Sent Event: optional "event: <name>", then "data: <line>" per line of `data`, then a
// blank line.
std::string sse_event(std::string_view data, std::string_view event = {});

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
  std::function<void(StreamWriter&)> stream;  // set: blocking chunked stream; body is ignored
  std::function<void(std::shared_ptr<ChunkSink>)> async_stream;  // set: event-driven chunked stream

  static HttpResponse json(int status, const nlohmann::json& value);
  static HttpResponse text(int status, std::string body,
                           std::string content_type = "text/plain; charset=utf-8");
  // The JSON error shape above. `type` defaults from the status (400/413/...: invalid_request_error,
  // 401 authentication_error, 404 not_found_error, 429 rate_limit_error, 5xx server_error);
  // an empty `param` is written as null.
  static HttpResponse error(int status, std::string message, std::string type = {}, std::string param = {});
  // Maps a Status to an error response: kInvalidArgument -> 400, kNotFound -> 404,
  // kResourceExhausted -> 429, kUnimplemented -> 501, others -> 500.
  static HttpResponse from_status(const Status& status);
  // A chunked response with content type text/event-stream (use writer.write_event()).
  static HttpResponse sse(std::function<void(StreamWriter&)> fn);
  // A chunked response with the given content type.
  static HttpResponse chunked(std::string content_type, std::function<void(StreamWriter&)> fn);
  // An event-driven text/event-stream response (write sse_event() chunks to the sink).
  static HttpResponse async_sse(std::function<void(std::shared_ptr<ChunkSink>)> fn);
};

// "Not Found", "Bad Request", ...
const char* http_reason(int status);

}  // namespace tidal::http
