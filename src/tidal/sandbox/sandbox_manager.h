// SandboxManager: the node's sandboxes, leases and metrics; what the HTTP API calls into.
//
// open() prepares the host once: the root directory, the "host" template and the rootfs-directory
// templates of options.templates (rootfs_template.h), cgroup detection, the
// seccomp program, and cleanup of anything a previous daemon with the same root left behind
// (mounts under <root>/sandboxes, cgroups under this root's base group).
//
// Warm pool: a background thread keeps options.warm_pool idle sandboxes ready for every template
// (options.warm_pool_per_template overrides the count of one); a create() or fork for network "none"
// adopts one of its template's (Sandbox::adopt) instead of building one. Pooled sandboxes
// wait in the CPU share group (cgroup.h) of the lease that took the last one, so that a hand-out
// to the same lease needs no cgroup migration; another lease's hand-out moves it (Cgroup::regroup).
//
// Admission (admission.h): at most max_sandboxes live sandboxes and max_execs running commands.
// Beyond that, create() and exec() wait in a bounded queue (fair across leases) for up to
// queue_timeout_ms (or the request's own wait); a full queue or a wait past the deadline is
// kResourceExhausted with QueueTicket saying which (HTTP 429 / 503, with Retry-After). Leases: create_lease(ttl) returns an id; sandboxes created with that lease are all
// destroyed when the lease expires (no heartbeat() within ttl) or is released. A sandbox with
// spec.timeout_s > 0 is destroyed that long after creation. A background thread enforces both
// (every 100 ms).
//
// Thread-safety: every method is safe from any thread. Destruction destroys every sandbox.
// Process-wide effect: open() sets SIGPIPE to SIG_IGN (stdin pipes of commands that exit early).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/http/metrics_registry.h"
#include "tidal/sandbox/admission.h"
#include "tidal/sandbox/egress.h"
#include "tidal/sandbox/sandbox.h"
#include "tidal/sandbox/seccomp_filter.h"
#include "tidal/sandbox/spawn_thread.h"

namespace tidal::sandbox {

struct ManagerOptions {
  std::string root = "/var/lib/tidal-sandbox";
  int max_sandboxes = 256;
  uint32_t uid_base = 1000000;  // host uid/gid of root inside every sandbox (65536 ids mapped)
  // Sandboxes kept created and idle (network "none", template "host") so that create() is a
  // hand-out: limits are applied on hand-out. They do not count against max_sandboxes.
  int warm_pool = 0;
  static constexpr int kMaxWarmPool = 4096;  // the largest pool size (any template) open() accepts
  // Per-template pool sizes that replace warm_pool for those templates (e.g. {"debian", 16}).
  std::map<std::string, int> warm_pool_per_template;
  // Commands running at once on the node (0: no limit); more wait in the exec queue.
  int max_execs = 0;
  // Requests allowed to wait for a sandbox slot / an exec slot; one more is refused (429).
  int max_queued = 1024;
  // How long a create or exec waits for a slot unless the request says otherwise.
  int64_t queue_timeout_ms = 30000;
  // Addresses of network "egress" sandboxes (a /16; each sandbox takes a /30). Set up (NAT table,
  // IPv4 forwarding) at the first egress create.
  std::string egress_subnet = "10.213.0.0/16";
  // Root filesystem templates besides the built-in "host": name -> rootfs directory (e.g. a
  // debootstrapped Debian; see rootfs_template.h). Checked at open().
  std::map<std::string, std::string> templates;
};

// A request's place in an admission queue: how long it may wait, and why it was turned away.
struct QueueTicket {
  int64_t wait_ms = -1;       // -1: ManagerOptions::queue_timeout_ms; 0: do not wait
  bool refused = false;       // out: the queue turned it away (the status says why)
  bool timed_out = false;     // out: it waited wait_ms without getting a slot (else: queue full)
  int64_t retry_after_s = 0;  // out: when to try again (a hint)
};

struct Lease {
  std::string id;
  int64_t ttl_ms = 0;
  std::chrono::steady_clock::time_point expires;
};

// One-shot execution (POST /v1/run): a fresh sandbox, the files, the code, one command, gone.
struct RunRequest {
  std::string language;  // "python" | "bash" | "sh"
  std::string code;
  std::string stdin_data;
  std::map<std::string, std::string> files;  // absolute path -> content
  int64_t timeout_ms = 30000;
  int64_t max_output_bytes = 1 << 20;
  SandboxSpec spec;  // limits (network none by default)
};

class SandboxManager {
 public:
  [[nodiscard]] static Expected<std::unique_ptr<SandboxManager>> open(ManagerOptions options);
  ~SandboxManager();

  [[nodiscard]] Expected<std::shared_ptr<Sandbox>> create(const SandboxSpec& spec, QueueTicket* ticket = nullptr);
  // kNotFound for an unknown (or already destroyed) id.
  [[nodiscard]] Expected<std::shared_ptr<Sandbox>> get(const std::string& id) const;
  [[nodiscard]] Status destroy(const std::string& id);
  // Live sandboxes whose labels contain every (key, value) of `labels`, oldest first.
  std::vector<std::shared_ptr<Sandbox>> list(const std::map<std::string, std::string>& labels = {}) const;
  [[nodiscard]] Expected<ExecResult> exec(const std::string& id, const ExecRequest& request,
                                          const OutputFn& on_output = {}, QueueTicket* ticket = nullptr);
  // A new sandbox (same spec and lease) whose filesystem is a copy-on-write snapshot of `id`'s
  // current one (see Sandbox::fork_source; a real copy while `id` runs commands or is paused).
  [[nodiscard]] Expected<std::shared_ptr<Sandbox>> fork(const std::string& id);
  // Replaces sandbox `id` by a fresh one from its template, keeping id, spec and lease.
  [[nodiscard]] Expected<std::shared_ptr<Sandbox>> reset(const std::string& id);
  [[nodiscard]] Expected<ExecResult> run_once(const RunRequest& request, QueueTicket* ticket = nullptr);

  [[nodiscard]] Expected<Lease> create_lease(int64_t ttl_ms);
  [[nodiscard]] Expected<Lease> heartbeat(const std::string& lease_id);
  // Destroys every sandbox under the lease and forgets it.
  [[nodiscard]] Status release_lease(const std::string& lease_id);
  // CPU time (ms) used so far by the sandboxes of a lease (live and destroyed ones; its cgroup
  // share group, cgroup.h). kNotFound for an unknown lease.
  [[nodiscard]] Expected<int64_t> lease_cpu_ms(const std::string& lease_id) const;
  // Live sandboxes of a lease.
  size_t lease_sandboxes(const std::string& lease_id) const;
  // The root filesystem templates, by name ("host" first is not guaranteed: sorted by name).
  std::vector<std::shared_ptr<const RootfsTemplate>> templates() const;

  size_t n_live() const;
  size_t n_warm() const;                                  // idle pooled sandboxes, every template
  size_t n_warm(const std::string& template_name) const;  // ... of one template
  int warm_target(const std::string& template_name) const;  // its pool size
  int64_t create_queue_depth() const { return create_slots_.waiting(); }
  int64_t exec_queue_depth() const { return exec_slots_.waiting(); }
  const std::string& cgroup_description() const;
  bool cgroups_enabled() const;
  const ManagerOptions& options() const { return options_; }
  tidal::http::MetricsRegistry& metrics() { return metrics_; }

 private:
  explicit SandboxManager(ManagerOptions options);
  std::string new_id(const char* prefix);
  // A new sandbox; from a fork's parent when `from` is set; under `id` when given (reset).
  Expected<std::shared_ptr<Sandbox>> create_with(const SandboxSpec& spec, const Sandbox::ForkSource* from,
                                                 const std::string& id = {}, QueueTicket* ticket = nullptr);
  // Waits for a slot of `q`; the refusal (kResourceExhausted) fills `ticket`.
  Status admit(AdmissionQueue& q, const std::string& group, QueueTicket* ticket, const char* what);
  void sweep_loop();
  void destroy_sandbox(const std::shared_ptr<Sandbox>& sb, const char* reason);
  std::shared_ptr<Sandbox> take_warm(const SandboxSpec& spec);
  void refill_warm();

  ManagerOptions options_;
  Sandbox::Host host_;
  std::unique_ptr<SeccompFilter> filter_;
  std::unique_ptr<SpawnThread> spawner_;
  // Egress (egress.h), opened at the first egress create; egress_error_ says why it is unavailable.
  std::mutex egress_mu_;
  std::unique_ptr<Egress> egress_;
  std::string egress_error_;
  bool egress_tried_ = false;
  Status ensure_egress();

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Sandbox>> sandboxes_;  // guarded by mu_
  std::map<std::string, Lease> leases_;                         // guarded by mu_
  std::map<std::string, std::deque<std::shared_ptr<Sandbox>>> warm_;  // by template; guarded by mu_
  std::string warm_lease_;  // lease of the last warm hand-out ("" none); guarded by mu_
  AdmissionQueue create_slots_;  // one slot per live (client) sandbox
  AdmissionQueue exec_slots_;    // one slot per running command

  tidal::http::MetricsRegistry metrics_;
  tidal::http::Counter* created_total_;
  tidal::http::Counter* destroyed_total_;
  tidal::http::Counter* create_failures_;
  tidal::http::Counter* execs_total_;
  tidal::http::Counter* exec_timeouts_;
  tidal::http::Counter* oom_kills_;
  tidal::http::Counter* rejected_full_;
  tidal::http::Counter* queue_timeouts_;
  tidal::http::Counter* expired_total_;
  tidal::http::Counter* warm_hits_;
  tidal::http::Counter* exec_cpu_ms_;
  tidal::http::Counter* reaped_;
  tidal::http::Counter* forks_cow_;
  tidal::http::Counter* forks_copied_;
  tidal::http::Gauge* execs_running_;
  tidal::http::Histogram* create_seconds_;
  tidal::http::Histogram* exec_seconds_;

  std::atomic<bool> stopping_{false};
  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  std::thread sweeper_;
};

}  // namespace tidal::sandbox
