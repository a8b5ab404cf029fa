// SandboxPool: the sandbox hosts of one RL run (one or many `tidal sandbox serve` daemons), each
// with its own lease, so that every host's sandboxes die with the run.
//
//   auto pool = SandboxPool::open({"http://10.0.0.1:8080", "http://10.0.0.2:8080"}, key, 60);
//   auto o = (*pool)->run({.code = "print(6*7)"});        // one-shot, on the least busy host
//   auto h = (*pool)->create_sandbox({.memory_mb = 256}); // {host, id}
//   auto r = (*pool)->exec(*h, {.argv = {"python3", "-c", "print(1)"}});  // on h's host
//   (*pool)->delete_sandbox(*h);
//   // ~SandboxPool: every lease is deleted, and with it every sandbox the run left on any host.
//
// open(): one SandboxClient and one LeaseHolder (a lease renewed every ttl/3) per host. A URL
// that does not parse, a URL listed twice, or a host that cannot be reached (no lease) is an
// error naming the URL.
//
// Host choice (run, create_sandbox): the host with the fewest calls in flight, round-robin among
// ties; hosts in back-off come last, hosts whose lease is lost never. The pool fills in the
// host's lease (a caller's `lease` field is overwritten). Fail-over: when a host is unreachable
// (kIoError), full after its client's retries (kResourceExhausted), or has lost the run's lease
// (kNotFound: the daemon restarted or the lease expired), it goes into back-off for `backoff_s`
// (a lost lease: for good) and the call is tried on the next host; when every host failed, the
// error names each host's failure (kResourceExhausted when every host was full, kIoError
// otherwise). Any other error (a bad request: kInvalidArgument, kInternal) is returned as is,
// without fail-over. A one-shot run that failed over may have started on the failed host (its
// sandbox dies with that host's lease).
//
// exec and delete_sandbox go to the handle's host (the sandbox's state lives there): no
// fail-over; an unreachable host still goes into back-off. Every error names the host's URL.
//
// Thread-safety: all methods are thread-safe; one pool is shared by every environment of a run.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/rollout/sandbox_client.h"

namespace tidal::rollout {

// A persistent sandbox of the pool: its host (index into the pool's hosts) and its id there.
struct SandboxHandle {
  size_t host = 0;
  std::string id;
  bool empty() const { return id.empty(); }
};

// One host's counters (cumulative since open).
struct SandboxHostStats {
  std::string url;       // "http://host:port"
  std::string lease;     // the run's lease on this host (empty: an unleased pool)
  int64_t calls = 0;     // requests sent: run, create, exec, delete
  int64_t failures = 0;  // of them, those that failed (any error)
  int64_t in_flight = 0;
  bool healthy = true;   // false while in back-off (unreachable or full), or for good once its lease is lost
};

class SandboxPool {
 public:
  // One lease per host, renewed every lease_ttl_s / 3 (lease_ttl_s in [0.3, 604800]).
  static Expected<std::unique_ptr<SandboxPool>> open(const std::vector<std::string>& urls, const std::string& api_key,
                                                     double lease_ttl_s = 60);
  // Without leases and without I/O (tests, tools that clean up after themselves): sandboxes are
  // created unleased. URL errors as open().
  static Expected<std::unique_ptr<SandboxPool>> unleased(const std::vector<std::string>& urls,
                                                         const std::string& api_key = {});
  ~SandboxPool();  // release()
  SandboxPool(const SandboxPool&) = delete;
  SandboxPool& operator=(const SandboxPool&) = delete;

  // How long a failed host is passed over (set before sharing the pool).
  double backoff_s = 2;

  size_t size() const { return hosts_.size(); }
  const std::string& url(size_t host) const;
  const std::string& lease(size_t host) const;  // empty when unleased

  Expected<SandboxExecResult> run(SandboxRun call);               // POST /v1/run (fail-over)
  Expected<SandboxHandle> create_sandbox(SandboxCreate spec);     // POST /v1/sandboxes (fail-over)
  Expected<SandboxExecResult> exec(const SandboxHandle& h, const SandboxExec& call);
  Status delete_sandbox(const SandboxHandle& h);

  std::vector<SandboxHostStats> stats() const;
  // OK while every host's lease is held; otherwise names each host whose lease failed or is lost.
  Status status() const;
  // Deletes every lease now (and with them their sandboxes); the errors of hosts that could not
  // be told are joined. Idempotent; later calls fail (the hosts no longer know the leases).
  Status release();

 private:
  struct Host {
    std::unique_ptr<SandboxClient> client;
    std::unique_ptr<LeaseHolder> lease;  // null: unleased
    std::string url, lease_id;
    std::atomic<int64_t> calls{0}, failures{0}, in_flight{0};
    std::atomic<int64_t> backoff_until_ns{0};  // steady clock
    std::atomic<bool> lease_lost{false};
  };
  using Clock = std::chrono::steady_clock;

  SandboxPool() = default;
  static Expected<std::unique_ptr<SandboxPool>> make(const std::vector<std::string>& urls, const std::string& api_key);
  // The next host for a fail-over call among those not yet `tried` (in_flight already counted);
  // -1 when none is left.
  int pick(std::vector<bool>& tried);
  bool usable(const Host& h) const;
  // Counts a finished call on `host` and updates its health from `s`.
  void finish(Host& h, const Status& s);
  template <class T, class F>
  Expected<T> with_failover(const std::string& what, F&& fn);
  Expected<size_t> handle_host(const SandboxHandle& h) const;

  std::vector<std::unique_ptr<Host>> hosts_;
  std::mutex pick_mu_;
  size_t next_ = 0;  // round-robin cursor (under pick_mu_)
};

}  // namespace tidal::rollout
