#include "tidal/http/http_response.h"

namespace tidal::http {

std::string sse_event(std::string_view data, std::string_view event) {
  std::string out;
  out.reserve(data.size() + 16);
  if (!event.empty()) {
    out += "event: ";
    out += event;
    out += '\n';
  }
  size_t pos = 0;
  while (true) {
    size_t nl = data.find('\n', pos);
    out += "data: ";
    out += data.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    out += '\n';
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  out += '\n';
  return out;
}

bool StreamWriter::write_event(std::string_view data, std::string_view event) { return write(sse_event(data, event)); }

HttpResponse HttpResponse::json(int status, const nlohmann::json& value) {
  HttpResponse r;
  r.status = status;
  // Replace invalid UTF-8 (e.g. binary command output) instead of throwing.
  r.body = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

HttpResponse HttpResponse::text(int status, std::string body, std::string content_type) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.content_type = std::move(content_type);
  return r;
}

HttpResponse HttpResponse::error(int status, std::string message, std::string type, std::string param) {
  if (type.empty()) {
    if (status == 401) type = "authentication_error";
    else if (status == 404) type = "not_found_error";
    else if (status == 429) type = "rate_limit_error";
    else if (status == 503) type = "service_unavailable_error";
    else if (status >= 500) type = "server_error";
    else type = "invalid_request_error";
  }
  nlohmann::json p = param.empty() ? nlohmann::json(nullptr) : nlohmann::json(std::move(param));
  return json(status, {{"error", {{"message", std::move(message)}, {"type", type}, {"param", std::move(p)}, {"code", status}}}});
}

HttpResponse HttpResponse::from_status(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return json(200, nlohmann::json::object());
    case StatusCode::kInvalidArgument: return error(400, status.message());
    case StatusCode::kNotFound: return error(404, status.message());
    case StatusCode::kResourceExhausted: return error(429, status.message());
    case StatusCode::kUnimplemented: return error(501, status.message());
    default: return error(500, status.message());
  }
}

HttpResponse HttpResponse::sse(std::function<void(StreamWriter&)> fn) {
  HttpResponse r = chunked("text/event-stream", std::move(fn));
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

HttpResponse HttpResponse::chunked(std::string content_type, std::function<void(StreamWriter&)> fn) {
  HttpResponse r;
  r.content_type = std::move(content_type);
  r.stream = std::move(fn);
  return r;
}

HttpResponse HttpResponse::async_sse(std::function<void(std::shared_ptr<ChunkSink>)> fn) {
  HttpResponse r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.async_stream = std::move(fn);
  return r;
}

const char* http_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

}  // namespace tidal::http
