// HttpResponse: what a handler returns, either a whole body or a stream of chunks.
//
// A plain response carries `body`. A streaming response sets `stream`: the server sends the status
// and headers with `Transfer-Encoding: chunked`, then calls `stream(writer)` on a worker thread;
// each writer.write() sends one chunk synchronously. The stream function may block (e.g. while a
// command runs); it should stop early when write() returns false (the client went away).
//
// Errors use one JSON shape everywhere (OpenAI-compatible):
//   {"error": {"message": "...", "type": "invalid_request_error", "code": 400}}
#pragma once

#include <functional>
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

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string body;
  std::function<void(StreamWriter&)> stream;  // set: chunked streaming response; body is ignored

  static HttpResponse json(int status, const nlohmann::json& value);
  static HttpResponse text(int status, std::string body,
                           std::string content_type = "text/plain; charset=utf-8");
  // The JSON error shape above. `type` defaults from the status (4xx: invalid_request_error ...).
  static HttpResponse error(int status, std::string message, std::string type = {});
  // Maps a Status to an error response: kInvalidArgument -> 400, kNotFound -> 404,
  // kResourceExhausted -> 429, kUnimplemented -> 501, others -> 500.
  static HttpResponse from_status(const Status& status);
  // A chunked response with content type text/event-stream (use writer.write_event()).
  static HttpResponse sse(std::function<void(StreamWriter&)> fn);
  // A chunked response with the given content type.
  static HttpResponse chunked(std::string content_type, std::function<void(StreamWriter&)> fn);
};

// "Not Found", "Bad Request", ...
const char* http_reason(int status);

}  // namespace tidal::http
