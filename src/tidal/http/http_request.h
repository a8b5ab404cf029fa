// HttpRequest: one parsed HTTP/1.1 request as a handler sees it.
//
// Ownership: plain value; the server builds it, the handler may move out of it.
// Header names are stored lower-case. `path` is percent-decoded and has no query string; `query`
// holds the decoded query parameters (a repeated key keeps its last value); `params` holds the
// `{name}` segments matched by the Router.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"

namespace tidal::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ... (upper case, as sent)
  std::string target;  // the raw request target, e.g. "/v1/x?y=1"
  std::string path;    // decoded path, e.g. "/v1/x"
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> params;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string remote;  // "ip:port" of the peer

  // Returns nullptr when the header is absent. `name` must be lower case.
  const std::string* header(std::string_view name) const;
  // The query parameter, or `fallback` when absent.
  std::string query_or(const std::string& key, const std::string& fallback = "") const;
  // The router parameter `name` (empty when the pattern has no such parameter).
  const std::string& param(const std::string& name) const;
  // Parses the body as JSON. An empty body is an error. The message is ready for a 400 response.
  Expected<nlohmann::json> json() const;
};

// Percent-decodes `in` ("%2F" -> "/"); `plus_is_space` also maps '+' to ' ' (query strings).
// Returns nullopt-equivalent error on a malformed escape.
Expected<std::string> url_decode(std::string_view in, bool plus_is_space);

// Parses a JSON request body. Errors (kInvalidArgument): not valid JSON; arrays/objects nested
// deeper than kMaxJsonNesting (core/json_nesting.h), refused before parsing.
Expected<nlohmann::json> parse_json_body(std::string_view body);
// Splits "a=1&b=%20" into decoded key/value pairs (a repeated key keeps its last value).
Expected<std::map<std::string, std::string>> parse_query(std::string_view query);
// Percent-encodes everything except unreserved characters (RFC 3986) and, if keep_slash, '/'.
std::string url_encode(std::string_view in, bool keep_slash = false);

}  // namespace tidal::http
