#include "tidal/http/router.h"

#include <algorithm>
#include <exception>

namespace tidal::http {

namespace {
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 1;  // skip the leading '/'
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    out.push_back(path.substr(pos, slash - pos));
    pos = slash + 1;
  }
  if (!out.empty() && out.back().empty()) out.pop_back();  // trailing '/'
  return out;
}

bool is_param(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}
}  // namespace

void Router::add_inline(const std::string& method, const std::string& pattern, HttpHandler handler) {
  add(method, pattern, std::move(handler));
  const std::vector<std::string> segments = split_path(pattern);
  for (auto& r : routes_) {
    if (r.method == method && r.segments == segments) r.run_inline = true;
  }
}

bool Router::runs_inline(HttpRequest& request) const {
  const Route* r = find(request, nullptr);
  return r && r->run_inline;
}

void Router::add(const std::string& method, const std::string& pattern, HttpHandler handler) {
  Route r;
  r.method = method;
  r.segments = split_path(pattern);
  for (const auto& s : r.segments) r.n_literal += is_param(s) ? 0 : 1;
  r.handler = std::move(handler);
  for (auto& existing : routes_) {
    if (existing.method == r.method && existing.segments == r.segments) {
      existing.handler = std::move(r.handler);
      existing.run_inline = false;
      return;
    }
  }
  routes_.push_back(std::move(r));
  std::stable_sort(routes_.begin(), routes_.end(),
                   [](const Route& a, const Route& b) { return a.n_literal > b.n_literal; });
}

const HttpHandler* Router::route(HttpRequest& request, bool* path_matched) const {
  const Route* r = find(request, path_matched);
  return r ? &r->handler : nullptr;
}

const Router::Route* Router::find(HttpRequest& request, bool* path_matched) const {
  if (path_matched) *path_matched = false;
  if (request.path.empty() || request.path[0] != '/') return nullptr;
  std::vector<std::string> segments = split_path(request.path);
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size()) continue;
    std::map<std::string, std::string> params;
    bool ok = true;
    for (size_t i = 0; i < segments.size() && ok; ++i) {
      if (is_param(r.segments[i])) {
        if (segments[i].empty()) ok = false;
        else params[r.segments[i].substr(1, r.segments[i].size() - 2)] = segments[i];
      } else {
        ok = r.segments[i] == segments[i];
      }
    }
    if (!ok) continue;
    if (r.method != request.method) {
      if (path_matched) *path_matched = true;
      continue;
    }
    request.params = std::move(params);
    return &r;
  }
  return nullptr;
}

HttpResponse Router::dispatch(HttpRequest& request) const {
  bool path_matched = false;
  const HttpHandler* handler = route(request, &path_matched);
  if (!handler) {
    if (path_matched) {
      return HttpResponse::error(405, "method " + request.method + " is not allowed on " + request.path);
    }
    return HttpResponse::error(404, "no route for " + request.method + " " + request.path);
  }
  try {
    return (*handler)(request);
  } catch (const std::exception& e) {
    return HttpResponse::error(500, std::string("internal error: ") + e.what());
  } catch (...) {
    return HttpResponse::error(500, "internal error");
  }
}

}  // namespace tidal::http
