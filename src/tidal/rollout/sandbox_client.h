// SandboxClient: a small blocking client for `tidal sandbox serve` (docs/sandbox-api.md), used by
// SandboxPool (sandbox_pool.h: one client and one lease per host of an RL run), through which the
// environments that run model-written code (arith-python, tool-use) reach it.
//
//   SandboxClient c("http://127.0.0.1:8080");         // parses the URL; no I/O yet
//   auto lease = LeaseHolder::create(url, key, 30);   // POST /v1/leases, heartbeats every ttl/3,
//                                                     // DELETE /v1/leases/{id} in the destructor
//   auto id = c.create_sandbox({.lease = lease->id()});
//   auto r  = c.exec(*id, {.argv = {"python3", "-c", "print(6*7)"}, .timeout_s = 5});
//   auto o  = c.run({.code = "print(6*7)", .lease = lease->id()});   // one-shot POST /v1/run
//   c.delete_sandbox(*id);
//
// Errors name the call, the endpoint and the HTTP status, with the server's message:
//   "sandbox POST http://127.0.0.1:8080/v1/sandboxes: HTTP 404: no lease 'lease-1'"
// A connection failure is kIoError, a 404 kNotFound, other 4xx kInvalidArgument, 429/503 (node
// full; retried up to `max_retries` times after Retry-After, capped at 2 s) kResourceExhausted,
// 5xx kInternal.
//
// Thread-safety: SandboxClient is thread-safe; it keeps a small pool of keep-alive connections
// (one per concurrent caller), so one client may be shared by every environment of a run.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"
#include "tidal/http/http_client.h"

namespace tidal::rollout {

struct SandboxUrl {
  std::string host;  // an IP address ("localhost" is taken as 127.0.0.1)
  uint16_t port = 0;
  std::string text() const { return "http://" + host + ":" + std::to_string(port); }
};

// "http://host:port" (a trailing "/" is allowed; no path, no https). The message names the URL.
Expected<SandboxUrl> parse_sandbox_url(const std::string& url);

// POST /v1/sandboxes. Zero/empty fields are left to the server's defaults.
struct SandboxCreate {
  std::string lease;                         // the sandbox dies with this lease
  int64_t cpu_millis = 0, memory_mb = 0, pids = 0, disk_mb = 0;
  int64_t timeout_s = 0;                     // lifetime (0: until deleted / lease ends)
  std::string network;                       // "none" (server default), "loopback", "egress"
  std::map<std::string, std::string> env, labels;
};

// POST /v1/sandboxes/{id}/exec. Exactly one of argv / shell.
struct SandboxExec {
  std::vector<std::string> argv;
  std::string shell;
  std::string stdin_data;
  std::string cwd;
  double timeout_s = 30;
  int64_t max_output_bytes = 1 << 20;
};

// POST /v1/run: a fresh sandbox runs `code` and is destroyed.
struct SandboxRun {
  std::string language = "python";          // python | bash | sh
  std::string code;
  std::map<std::string, std::string> files;  // absolute path -> content, written before the run
  std::string stdin_data;
  double timeout_s = 30;
  int64_t max_output_bytes = 1 << 20;
  int64_t memory_mb = 0, cpu_millis = 0, pids = 0;  // 0: server defaults
  std::string lease;                         // empty: no lease
};

struct SandboxExecResult {
  int64_t exit_code = 0;
  int64_t signal = 0;
  std::string stdout_data, stderr_data;
  bool truncated = false, timed_out = false, oom_killed = false;
  int64_t wall_ms = 0, cpu_ms = 0;
  // The command ran to completion with exit code 0 (no timeout, signal or OOM kill).
  bool ok() const { return exit_code == 0 && signal == 0 && !timed_out && !oom_killed; }
};

class SandboxClient {
 public:
  explicit SandboxClient(SandboxUrl url, std::string api_key = {});
  // Parses `url` (errors name it).
  static Expected<std::unique_ptr<SandboxClient>> connect(const std::string& url, std::string api_key = {});
  ~SandboxClient();
  SandboxClient(const SandboxClient&) = delete;
  SandboxClient& operator=(const SandboxClient&) = delete;

  const SandboxUrl& url() const { return url_; }
  int max_retries = 2;  // for 429/503 (set before sharing the client)

  Expected<nlohmann::json> health();                               // GET /health
  Expected<std::string> create_lease(double ttl_s);                // POST /v1/leases -> id
  Status heartbeat(const std::string& lease);                      // POST /v1/leases/{id}/heartbeat
  Status delete_lease(const std::string& lease);                   // DELETE /v1/leases/{id}
  Expected<std::string> create_sandbox(const SandboxCreate& spec); // POST /v1/sandboxes -> id
  Expected<nlohmann::json> get_sandbox(const std::string& id);     // GET /v1/sandboxes/{id} (kNotFound when gone)
  Status delete_sandbox(const std::string& id);                    // DELETE /v1/sandboxes/{id}
  Expected<SandboxExecResult> exec(const std::string& id, const SandboxExec& call);
  // exec of `python3 -c CODE` (stdin empty).
  Expected<SandboxExecResult> exec_python(const std::string& id, const std::string& code, double timeout_s);
  Expected<SandboxExecResult> run(const SandboxRun& call);         // POST /v1/run

  // One request; the JSON body of a 2xx answer (an empty body is an empty object).
  Expected<nlohmann::json> call(const std::string& method, const std::string& target,
                                const nlohmann::json& body = nullptr);

 private:
  std::unique_ptr<http::HttpClient> take();
  void give(std::unique_ptr<http::HttpClient> c);

  SandboxUrl url_;
  std::string api_key_;
  std::mutex mu_;
  std::vector<std::unique_ptr<http::HttpClient>> idle_;
};

// Holds a lease for as long as it lives: created at construction, renewed every ttl/3 on a
// background thread, deleted (with all its sandboxes) in the destructor. A heartbeat that fails
// is retried at the next tick; once the server answers 404 the lease is lost (expired) and
// status() says so.
class LeaseHolder {
 public:
  static Expected<std::unique_ptr<LeaseHolder>> create(const std::string& url, const std::string& api_key,
                                                        double ttl_s = 30);
  ~LeaseHolder();
  LeaseHolder(const LeaseHolder&) = delete;
  LeaseHolder& operator=(const LeaseHolder&) = delete;

  const std::string& id() const { return id_; }
  double ttl_s() const { return ttl_s_; }
  // OK while the lease is held; the last heartbeat error otherwise.
  Status status() const;
  int64_t heartbeats() const { return heartbeats_.load(); }
  // Deletes the lease now (the destructor then does nothing). Idempotent.
  Status release();

 private:
  LeaseHolder(std::unique_ptr<SandboxClient> client, std::string id, double ttl_s);
  void loop();

  std::unique_ptr<SandboxClient> client_;
  std::string id_;
  double ttl_s_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, released_ = false;
  Status status_;
  std::atomic<int64_t> heartbeats_{0};
  std::thread thread_;
};

}  // namespace tidal::rollout
