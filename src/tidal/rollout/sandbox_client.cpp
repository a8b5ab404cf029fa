#include "tidal/rollout/sandbox_client.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstdlib>

namespace tidal::rollout {

using nlohmann::json;

Expected<SandboxUrl> parse_sandbox_url(const std::string& url) {
  const std::string bad = "sandbox url '" + url + "': ";
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) return invalid_argument(bad + "expected http://host:port");
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return invalid_argument(bad + "no path allowed, expected http://host:port");
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return invalid_argument(bad + "expected http://host:port");
  SandboxUrl u;
  u.host = rest.substr(0, colon);
  if (u.host == "localhost") u.host = "127.0.0.1";
  const std::string port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit))
    return invalid_argument(bad + "port must be a number in 1..65535");
  const long p = std::strtol(port.c_str(), nullptr, 10);
  if (p < 1 || p > 65535) return invalid_argument(bad + "port must be a number in 1..65535");
  u.port = static_cast<uint16_t>(p);
  for (char c : u.host) {
    if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == '.' || c == ':'))
      return invalid_argument(bad + "host must be an IP address (or localhost)");
  }
  return u;
}

SandboxClient::SandboxClient(SandboxUrl url, std::string api_key) : url_(std::move(url)), api_key_(std::move(api_key)) {}
SandboxClient::~SandboxClient() = default;

Expected<std::unique_ptr<SandboxClient>> SandboxClient::connect(const std::string& url, std::string api_key) {
  TIDAL_ASSIGN_OR_RETURN(SandboxUrl u, parse_sandbox_url(url));
  return std::make_unique<SandboxClient>(std::move(u), std::move(api_key));
}

std::unique_ptr<http::HttpClient> SandboxClient::take() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<http::HttpClient>(url_.host, url_.port);
  c->set_api_key(api_key_);
  return c;
}

void SandboxClient::give(std::unique_ptr<http::HttpClient> c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < 64) idle_.push_back(std::move(c));
}

Expected<json> SandboxClient::call(const std::string& method, const std::string& target, const json& body) {
  const std::string what = "sandbox " + method + " " + url_.text() + target;
  const std::string payload = body.is_null() ? std::string() : body.dump(-1, ' ', false, json::error_handler_t::replace);
  std::map<std::string, std::string> headers;
  if (!payload.empty()) headers["Content-Type"] = "application/json";
  for (int attempt = 0;; ++attempt) {
    auto client = take();
    auto r = client->request(method, target, payload, headers);
    if (!r) return io_error(what + ": " + r.status().message());
    give(std::move(client));
    const int status = r->status;
    json j = r->body.empty() ? json::object() : json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    if (status >= 200 && status < 300) {
      if (j.is_discarded()) return internal_error(what + ": HTTP " + std::to_string(status) + ": the answer is not JSON");
      return j;
    }
    std::string message = r->body.substr(0, 300);
    if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object() &&
        j["error"].contains("message") && j["error"]["message"].is_string())
      message = j["error"]["message"].get<std::string>();
    const std::string full = what + ": HTTP " + std::to_string(status) + ": " + message;
    if ((status == 429 || status == 503) && attempt < max_retries) {
      double wait_s = 1;
      if (auto it = r->headers.find("retry-after"); it != r->headers.end()) wait_s = std::atof(it->second.c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(1000 * std::clamp(wait_s, 0.05, 2.0))));
      continue;
    }
    if (status == 404) return not_found(full);
    if (status == 429 || status == 503) return resource_exhausted(full);
    if (status >= 400 && status < 500) return invalid_argument(full);
    return internal_error(full);
  }
}

Expected<json> SandboxClient::health() { return call("GET", "/health"); }

Expected<std::string> SandboxClient::create_lease(double ttl_s) {
  TIDAL_ASSIGN_OR_RETURN(json j, call("POST", "/v1/leases", json{{"ttl_s", ttl_s}}));
  if (!j.contains("id") || !j["id"].is_string()) return internal_error("sandbox POST /v1/leases: no 'id' in the answer");
  return j["id"].get<std::string>();
}

Status SandboxClient::heartbeat(const std::string& lease) {
  return call("POST", "/v1/leases/" + lease + "/heartbeat").status();
}

Status SandboxClient::delete_lease(const std::string& lease) { return call("DELETE", "/v1/leases/" + lease).status(); }

Expected<std::string> SandboxClient::create_sandbox(const SandboxCreate& s) {
  json body = json::object();
  if (!s.lease.empty()) body["lease"] = s.lease;
  if (s.cpu_millis) body["cpu_millis"] = s.cpu_millis;
  if (s.memory_mb) body["memory_mb"] = s.memory_mb;
  if (s.pids) body["pids"] = s.pids;
  if (s.disk_mb) body["disk_mb"] = s.disk_mb;
  if (s.timeout_s) body["timeout_s"] = s.timeout_s;
  if (!s.network.empty()) body["network"] = s.network;
  if (!s.env.empty()) body["env"] = s.env;
  if (!s.labels.empty()) body["labels"] = s.labels;
  TIDAL_ASSIGN_OR_RETURN(json j, call("POST", "/v1/sandboxes", body));
  if (!j.contains("id") || !j["id"].is_string()) return internal_error("sandbox POST /v1/sandboxes: no 'id' in the answer");
  return j["id"].get<std::string>();
}

Expected<json> SandboxClient::get_sandbox(const std::string& id) { return call("GET", "/v1/sandboxes/" + id); }

Status SandboxClient::delete_sandbox(const std::string& id) { return call("DELETE", "/v1/sandboxes/" + id).status(); }

namespace {

Expected<SandboxExecResult> parse_result(const json& j, const std::string& what) {
  SandboxExecResult r;
  try {
    r.exit_code = j.at("exit_code").get<int64_t>();
    r.signal = j.value("signal", int64_t{0});
    r.stdout_data = j.value("stdout", std::string());
    r.stderr_data = j.value("stderr", std::string());
    r.truncated = j.value("truncated", false);
    r.timed_out = j.value("timed_out", false);
    r.oom_killed = j.value("oom_killed", false);
    r.wall_ms = j.value("wall_ms", int64_t{0});
    r.cpu_ms = j.value("cpu_ms", int64_t{0});
  } catch (const json::exception& e) {
    return internal_error(what + ": unexpected exec result: " + e.what());
  }
  return r;
}

}  // namespace

Expected<SandboxExecResult> SandboxClient::exec(const std::string& id, const SandboxExec& c) {
  json body = {{"timeout_s", c.timeout_s}, {"max_output_bytes", c.max_output_bytes}};
  if (!c.argv.empty()) body["cmd"] = c.argv;
  if (!c.shell.empty()) body["shell"] = c.shell;
  if (!c.stdin_data.empty()) body["stdin"] = c.stdin_data;
  if (!c.cwd.empty()) body["cwd"] = c.cwd;
  const std::string target = "/v1/sandboxes/" + id + "/exec";
  TIDAL_ASSIGN_OR_RETURN(json j, call("POST", target, body));
  return parse_result(j, "sandbox POST " + url_.text() + target);
}

Expected<SandboxExecResult> SandboxClient::exec_python(const std::string& id, const std::string& code, double timeout_s) {
  SandboxExec c;
  c.argv = {"python3", "-c", code};
  c.timeout_s = timeout_s;
  return exec(id, c);
}

Expected<SandboxExecResult> SandboxClient::run(const SandboxRun& c) {
  json body = {{"language", c.language}, {"code", c.code}, {"timeout_s", c.timeout_s},
               {"max_output_bytes", c.max_output_bytes}};
  if (!c.files.empty()) body["files"] = c.files;
  if (!c.stdin_data.empty()) body["stdin"] = c.stdin_data;
  if (c.memory_mb) body["memory_mb"] = c.memory_mb;
  if (c.cpu_millis) body["cpu_millis"] = c.cpu_millis;
  if (c.pids) body["pids"] = c.pids;
  if (!c.lease.empty()) body["lease"] = c.lease;
  TIDAL_ASSIGN_OR_RETURN(json j, call("POST", "/v1/run", body));
  return parse_result(j, "sandbox POST " + url_.text() + "/v1/run");
}

// ---- LeaseHolder ----

Expected<std::unique_ptr<LeaseHolder>> LeaseHolder::create(const std::string& url, const std::string& api_key,
                                                             double ttl_s) {
  if (!(ttl_s >= 0.3) || ttl_s > 7 * 24 * 3600) return invalid_argument("sandbox lease ttl_s must be in [0.3, 604800]");
  TIDAL_ASSIGN_OR_RETURN(auto client, SandboxClient::connect(url, api_key));
  TIDAL_ASSIGN_OR_RETURN(std::string id, client->create_lease(ttl_s));
  return std::unique_ptr<LeaseHolder>(new LeaseHolder(std::move(client), std::move(id), ttl_s));
}

LeaseHolder::LeaseHolder(std::unique_ptr<SandboxClient> client, std::string id, double ttl_s)
    : client_(std::move(client)), id_(std::move(id)), ttl_s_(ttl_s) {
  client_->max_retries = 0;  // a heartbeat must not sleep past its own tick
  thread_ = std::thread([this] { loop(); });
}

LeaseHolder::~LeaseHolder() { (void)release(); }

Status LeaseHolder::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void LeaseHolder::loop() {
  const auto period = std::chrono::milliseconds(static_cast<int64_t>(ttl_s_ * 1000 / 3));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (cv_.wait_for(lock, period, [this] { return stop_; })) break;
    lock.unlock();
    Status s = client_->heartbeat(id_);
    heartbeats_.fetch_add(1);
    lock.lock();
    if (s.is_ok()) {
      if (status_.code() != StatusCode::kNotFound) status_ = Status::ok();
    } else if (status_.code() != StatusCode::kNotFound) {
      status_ = s;  // kNotFound: the lease expired on the server; it stays lost
    }
  }
}

Status LeaseHolder::release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (released_) return Status::ok();
    released_ = true;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  Status s = client_->delete_lease(id_);
  if (s.code() == StatusCode::kNotFound) return Status::ok();  // already gone (expired): nothing outlives it
  return s;
}

}  // namespace tidal::rollout
