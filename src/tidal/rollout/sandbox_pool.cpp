#include "tidal/rollout/sandbox_pool.h"

#include <algorithm>
#include <set>
#include <utility>

namespace tidal::rollout {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Expected<std::unique_ptr<SandboxPool>> SandboxPool::make(const std::vector<std::string>& urls,
                                                         const std::string& api_key) {
  if (urls.empty()) return invalid_argument("sandbox pool: no sandbox host url given");
  std::unique_ptr<SandboxPool> pool(new SandboxPool());
  std::set<std::string> seen;
  for (const auto& u : urls) {
    TIDAL_ASSIGN_OR_RETURN(SandboxUrl parsed, parse_sandbox_url(u));
    const std::string text = parsed.text();
    if (!seen.insert(text).second) return invalid_argument("sandbox url '" + u + "': listed twice (as " + text + ")");
    auto h = std::make_unique<Host>();
    h->url = text;
    h->client = std::make_unique<SandboxClient>(std::move(parsed), api_key);
    pool->hosts_.push_back(std::move(h));
  }
  return pool;
}

Expected<std::unique_ptr<SandboxPool>> SandboxPool::unleased(const std::vector<std::string>& urls,
                                                             const std::string& api_key) {
  return make(urls, api_key);
}

Expected<std::unique_ptr<SandboxPool>> SandboxPool::open(const std::vector<std::string>& urls,
                                                         const std::string& api_key, double lease_ttl_s) {
  TIDAL_ASSIGN_OR_RETURN(auto pool, make(urls, api_key));
  for (auto& h : pool->hosts_) {
    auto lease = LeaseHolder::create(h->url, api_key, lease_ttl_s);
    // The leases already taken are deleted when `pool` goes out of scope.
    if (!lease) return Status(lease.status().code(), "sandbox host " + h->url + ": cannot take the run's lease: " +
                                                         lease.status().message());
    h->lease = std::move(*lease);
    h->lease_id = h->lease->id();
  }
  return pool;
}

SandboxPool::~SandboxPool() { (void)release(); }

const std::string& SandboxPool::url(size_t host) const { return hosts_.at(host)->url; }
const std::string& SandboxPool::lease(size_t host) const { return hosts_.at(host)->lease_id; }

bool SandboxPool::usable(const Host& h) const {
  if (h.lease_lost.load()) return false;
  return !h.lease || h.lease->status().code() != StatusCode::kNotFound;
}

int SandboxPool::pick(std::vector<bool>& tried) {
  const int64_t now = now_ns();
  std::lock_guard<std::mutex> lock(pick_mu_);
  const size_t n = hosts_.size();
  const size_t start = next_++ % n;
  int best = -1;
  std::pair<bool, int64_t> best_key;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    const Host& h = *hosts_[i];
    if (tried[i] || !usable(h)) continue;
    const std::pair<bool, int64_t> key = {h.backoff_until_ns.load() > now, h.in_flight.load()};
    if (best < 0 || key < best_key) {
      best = static_cast<int>(i);
      best_key = key;
    }
  }
  if (best >= 0) {
    tried[size_t(best)] = true;
    hosts_[size_t(best)]->in_flight.fetch_add(1);
  }
  return best;
}

void SandboxPool::finish(Host& h, const Status& s) {
  h.in_flight.fetch_sub(1);
  h.calls.fetch_add(1);
  if (s.is_ok()) {
    h.backoff_until_ns.store(0);
    return;
  }
  h.failures.fetch_add(1);
  if (s.code() == StatusCode::kIoError || s.code() == StatusCode::kResourceExhausted)
    h.backoff_until_ns.store(now_ns() + static_cast<int64_t>(backoff_s * 1e9));
}

template <class T, class F>
Expected<T> SandboxPool::with_failover(const std::string& what, F&& fn) {
  std::vector<bool> tried(hosts_.size(), false);
  std::string failures;
  int failed = 0;
  bool all_full = true;
  for (;;) {
    const int i = pick(tried);
    if (i < 0) break;
    Host& h = *hosts_[size_t(i)];
    Expected<T> r = fn(h, size_t(i));
    finish(h, r.status());
    if (r.has_value()) return r;
    const StatusCode code = r.status().code();
    if (code == StatusCode::kNotFound && h.lease) {
      // The host no longer knows the run's lease (restarted daemon, expired lease): its sandboxes
      // are gone and it refuses new ones under that lease. Leave it out for the rest of the run.
      h.lease_lost.store(true);
    } else if (code != StatusCode::kIoError && code != StatusCode::kResourceExhausted) {
      return r.status();  // a bad request fails the same on every host
    }
    if (code != StatusCode::kResourceExhausted) all_full = false;
    failures += std::string(failures.empty() ? "" : "; ") + r.status().message();
    ++failed;
  }
  if (failed == 0) {
    std::string urls;
    for (const auto& h : hosts_) urls += (urls.empty() ? "" : ", ") + h->url;
    return io_error("sandbox " + what + ": no usable sandbox host (every host lost the run's lease: " + urls + ")");
  }
  const std::string msg = "sandbox " + what + ": " +
                          (hosts_.size() == 1 ? std::string("the sandbox host failed: ")
                                              : "all " + std::to_string(failed) + " usable sandbox hosts failed: ") +
                          failures;
  return all_full ? Status(resource_exhausted(msg)) : Status(io_error(msg));
}

Expected<SandboxExecResult> SandboxPool::run(SandboxRun call) {
  return with_failover<SandboxExecResult>("run", [&](Host& h, size_t) {
    call.lease = h.lease_id;
    return h.client->run(call);
  });
}

Expected<SandboxHandle> SandboxPool::create_sandbox(SandboxCreate spec) {
  return with_failover<SandboxHandle>("create", [&](Host& h, size_t i) -> Expected<SandboxHandle> {
    spec.lease = h.lease_id;
    TIDAL_ASSIGN_OR_RETURN(std::string id, h.client->create_sandbox(spec));
    return SandboxHandle{i, std::move(id)};
  });
}

Expected<size_t> SandboxPool::handle_host(const SandboxHandle& h) const {
  if (h.host >= hosts_.size())
    return invalid_argument("sandbox handle: host " + std::to_string(h.host) + " is not in the pool (" +
                            std::to_string(hosts_.size()) + " hosts)");
  if (h.id.empty()) return invalid_argument("sandbox handle: no sandbox id");
  return h.host;
}

Expected<SandboxExecResult> SandboxPool::exec(const SandboxHandle& handle, const SandboxExec& call) {
  TIDAL_ASSIGN_OR_RETURN(size_t i, handle_host(handle));
  Host& h = *hosts_[i];
  h.in_flight.fetch_add(1);
  auto r = h.client->exec(handle.id, call);
  finish(h, r.status());
  return r;
}

Status SandboxPool::delete_sandbox(const SandboxHandle& handle) {
  TIDAL_ASSIGN_OR_RETURN(size_t i, handle_host(handle));
  Host& h = *hosts_[i];
  h.in_flight.fetch_add(1);
  Status s = h.client->delete_sandbox(handle.id);
  finish(h, s);
  return s;
}

std::vector<SandboxHostStats> SandboxPool::stats() const {
  const int64_t now = now_ns();
  std::vector<SandboxHostStats> out;
  out.reserve(hosts_.size());
  for (const auto& h : hosts_) {
    SandboxHostStats s;
    s.url = h->url;
    s.lease = h->lease_id;
    s.calls = h->calls.load();
    s.failures = h->failures.load();
    s.in_flight = h->in_flight.load();
    s.healthy = usable(*h) && h->backoff_until_ns.load() <= now;
    out.push_back(std::move(s));
  }
  return out;
}

Status SandboxPool::status() const {
  std::string msg;
  StatusCode code = StatusCode::kOk;
  for (const auto& h : hosts_) {
    if (!h->lease) continue;
    Status s = h->lease->status();
    if (s.is_ok() && h->lease_lost.load())
      s = not_found("sandbox " + h->url + ": the host refused the run's lease '" + h->lease_id + "' (lost)");
    if (s.is_ok()) continue;
    if (code == StatusCode::kOk || s.code() == StatusCode::kNotFound) code = s.code();
    msg += (msg.empty() ? "" : "; ") + ("lease " + h->lease_id + " on " + h->url + ": " + s.message());
  }
  return code == StatusCode::kOk ? Status::ok() : Status(code, msg);
}

Status SandboxPool::release() {
  std::string msg;
  for (auto& h : hosts_) {
    if (!h->lease) continue;
    Status s = h->lease->release();
    if (!s.is_ok()) msg += (msg.empty() ? "" : "; ") + s.message();
  }
  return msg.empty() ? Status::ok() : io_error("sandbox pool release: " + msg);
}

}  // namespace tidal::rollout
