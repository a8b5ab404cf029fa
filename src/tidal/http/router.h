// Router: maps (method, path) to a handler; path patterns may hold `{name}` segments.
//
//   router.add("POST", "/v1/sandboxes/{id}/exec", handler);
//   "/v1/sandboxes/abc/exec" matches with params {"id": "abc"}.
//
// A `{name}` segment matches exactly one non-empty path segment. Literal segments win over
// parameters when two patterns could match (routes are tried most-literal first). A trailing '/'
// in the request path is ignored. Thread-safety: add() during setup only; route() is const and
// safe from any number of threads afterwards.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tidal/http/http_request.h"
#include "tidal/http/http_response.h"

namespace tidal::http {

// A handler runs on a worker thread and may block (one added with add_inline() runs on the I/O
// thread and must not). Exceptions it throws become a 500 response.
using HttpHandler = std::function<HttpResponse(HttpRequest&)>;

class Router {
 public:
  // `pattern` must start with '/'. Adding the same (method, pattern) twice replaces the handler.
  void add(const std::string& method, const std::string& pattern, HttpHandler handler);
  // Like add(), for a handler that is quick and never blocks (health, metrics, resume): the server
  // runs it on the I/O thread, so it is answered even while every worker thread is busy.
  void add_inline(const std::string& method, const std::string& pattern, HttpHandler handler);
  // True when `request` routes to a handler added with add_inline().
  bool runs_inline(HttpRequest& request) const;

  // Finds the handler for `request` and fills request.params. Returns nullptr when none matches;
  // then *path_matched tells whether some route had this path with another method (so the caller
  // answers 405 rather than 404).
  const HttpHandler* route(HttpRequest& request, bool* path_matched = nullptr) const;

  // Calls route() and the handler, turning a missing route into 404/405 and an exception into 500.
  HttpResponse dispatch(HttpRequest& request) const;

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // "{id}" marks a parameter
    int n_literal = 0;
    bool run_inline = false;
    HttpHandler handler;
  };
  const Route* find(HttpRequest& request, bool* path_matched) const;
  std::vector<Route> routes_;  // sorted: more literal segments first
};

}  // namespace tidal::http
