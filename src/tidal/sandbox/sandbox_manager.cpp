#include "tidal/sandbox/sandbox_manager.h"

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <random>

namespace tidal::sandbox {

namespace {
std::string hex(uint64_t v, int digits) {
  static const char* kHex = "0123456789abcdef";
  std::string s(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kHex[v & 15];
  return s;
}
}  // namespace

SandboxManager::SandboxManager(ManagerOptions options)
    : options_(std::move(options)),
      create_slots_(options_.max_sandboxes, options_.max_queued),
      exec_slots_(options_.max_execs, options_.max_queued) {
  auto buckets = tidal::http::MetricsRegistry::exponential_buckets(0.001, 2, 16);  // 1 ms .. 33 s
  metrics_.gauge_fn("tidal_sandbox_live", "Live sandboxes.", [this] { return static_cast<double>(n_live()); });
  metrics_.gauge_fn("tidal_sandbox_leases", "Active leases.", [this] {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<double>(leases_.size());
  });
  created_total_ = &metrics_.counter("tidal_sandbox_created_total", "Sandboxes created.");
  destroyed_total_ = &metrics_.counter("tidal_sandbox_destroyed_total", "Sandboxes destroyed.");
  create_failures_ = &metrics_.counter("tidal_sandbox_create_failures_total", "Sandbox creations that failed.");
  rejected_full_ = &metrics_.counter("tidal_sandbox_rejected_total", "Creates and execs refused because their queue was full.");
  queue_timeouts_ = &metrics_.counter("tidal_sandbox_queue_timeouts_total", "Creates and execs that waited past their deadline.");
  metrics_.gauge_fn("tidal_sandbox_create_queue_depth", "Creates waiting for a sandbox slot.",
                    [this] { return static_cast<double>(create_slots_.waiting()); });
  metrics_.gauge_fn("tidal_sandbox_exec_queue_depth", "Execs waiting for an exec slot.",
                    [this] { return static_cast<double>(exec_slots_.waiting()); });
  expired_total_ = &metrics_.counter("tidal_sandbox_expired_total", "Sandboxes destroyed by lease expiry or timeout.");
  warm_hits_ = &metrics_.counter("tidal_sandbox_warm_hits_total", "Creations served from the warm pool.");
  forks_cow_ = &metrics_.counter("tidal_sandbox_forks_cow_total", "Forks that stacked the parent's frozen layers (no copy).");
  forks_copied_ = &metrics_.counter("tidal_sandbox_forks_copied_total", "Forks that copied the parent's files (it was running commands or paused).");
  metrics_.gauge_fn("tidal_sandbox_warm_ready", "Idle sandboxes in the warm pool.", [this] { return static_cast<double>(n_warm()); });
  execs_total_ = &metrics_.counter("tidal_sandbox_execs_total", "Commands executed.");
  exec_timeouts_ = &metrics_.counter("tidal_sandbox_exec_timeouts_total", "Commands killed at their timeout.");
  oom_kills_ = &metrics_.counter("tidal_sandbox_oom_kills_total", "Commands killed by a sandbox memory limit.");
  exec_cpu_ms_ = &metrics_.counter("tidal_sandbox_exec_cpu_milliseconds_total",
                                   "CPU time (user + system) of finished commands and everything they reaped.");
  reaped_ = &metrics_.counter("tidal_sandbox_reaped_processes_total",
                              "Processes killed and reaped by the service: what a command left running when it "
                              "exited, and every process of a destroyed sandbox (its init included).");
  execs_running_ = &metrics_.gauge("tidal_sandbox_execs_running", "Commands running now.");
  create_seconds_ = &metrics_.histogram("tidal_sandbox_create_seconds", "Sandbox creation latency.", buckets);
  exec_seconds_ = &metrics_.histogram("tidal_sandbox_exec_seconds", "Command wall time.", buckets);
}

Expected<std::unique_ptr<SandboxManager>> SandboxManager::open(ManagerOptions options) {
  if (options.max_sandboxes < 1) return invalid_argument("max_sandboxes must be >= 1");
  constexpr int kMaxWarmPool = ManagerOptions::kMaxWarmPool;
  if (options.warm_pool < 0 || options.warm_pool > kMaxWarmPool) {
    return invalid_argument("warm_pool must be in [0, " + std::to_string(kMaxWarmPool) + "], got " +
                            std::to_string(options.warm_pool));
  }
  for (const auto& [name, n] : options.warm_pool_per_template) {
    if (name != "host" && !options.templates.count(name)) {
      return invalid_argument("warm pool size for unknown template '" + name + "'");
    }
    if (n < 0 || n > kMaxWarmPool) {
      return invalid_argument("warm pool of template '" + name + "' must be in [0, " + std::to_string(kMaxWarmPool) +
                              "], got " + std::to_string(n));
    }
  }
  // NOTE: writing a command's stdin after it exited must be an EPIPE error, not a fatal SIGPIPE.
  // Commands get default signal dispositions back before execve (child::reset_signals).
  ::signal(SIGPIPE, SIG_IGN);
  std::error_code ec;
  std::filesystem::create_directories(options.root + "/sandboxes", ec);
  if (ec) return io_error("cannot create " + options.root + "/sandboxes: " + ec.message());
  options.root = std::filesystem::canonical(options.root, ec).string();
  ::chmod(options.root.c_str(), 0711);
  std::unique_ptr<SandboxManager> m(new SandboxManager(options));
  m->host_.root = m->options_.root;
  m->host_.uid_base = m->host_.gid_base = m->options_.uid_base;
  TIDAL_ASSIGN_OR_RETURN(m->host_.templates["host"],
                         RootfsTemplate::open_host(m->options_.root, m->host_.uid_base, m->host_.gid_base));
  for (const auto& [name, dir] : m->options_.templates) {
    TIDAL_ASSIGN_OR_RETURN(m->host_.templates[name],
                           RootfsTemplate::open_dir(name, dir, m->options_.root, m->host_.uid_base, m->host_.gid_base,
                                                    65536));
  }
  // One base cgroup per root directory, so daemons (and tests) with different roots never touch
  // each other's groups.
  std::string base = "tidal-sandbox-" + hex(std::hash<std::string>{}(m->options_.root), 8);
  m->host_.cgroups = CgroupHost::detect(base);
  TIDAL_ASSIGN_OR_RETURN(SeccompFilter filter, SeccompFilter::build());
  m->filter_ = std::make_unique<SeccompFilter>(std::move(filter));
  m->host_.filter = m->filter_.get();
  m->spawner_ = std::make_unique<SpawnThread>();
  m->host_.spawner = m->spawner_.get();
  // Leftovers of a previous daemon with this root: mounts and cgroups.
  Rootfs::cleanup_stale(m->options_.root);
  m->host_.cgroups->cleanup_stale();
  m->sweeper_ = std::thread([p = m.get()] { p->sweep_loop(); });
  return m;
}

SandboxManager::~SandboxManager() {
  stopping_.store(true);
  create_slots_.close();
  exec_slots_.close();
  sweep_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  std::map<std::string, std::shared_ptr<Sandbox>> all;
  std::map<std::string, std::deque<std::shared_ptr<Sandbox>>> warm;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(sandboxes_);
    warm.swap(warm_);
  }
  for (auto& [id, sb] : all) sb->destroy();
  for (auto& [name, pool] : warm) {
    for (auto& sb : pool) sb->destroy();
  }
  all.clear();
  warm.clear();
  if (host_.cgroups) host_.cgroups->remove_base();
}

std::string SandboxManager::new_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::string(prefix) + hex(rng(), 16);
}

size_t SandboxManager::n_warm() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [name, pool] : warm_) n += pool.size();
  return n;
}

size_t SandboxManager::n_warm(const std::string& template_name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = warm_.find(template_name);
  return it == warm_.end() ? 0 : it->second.size();
}

int SandboxManager::warm_target(const std::string& template_name) const {
  auto it = options_.warm_pool_per_template.find(template_name);
  return it != options_.warm_pool_per_template.end() ? it->second : options_.warm_pool;
}

std::shared_ptr<Sandbox> SandboxManager::take_warm(const SandboxSpec& spec) {
  if (spec.network != NetworkMode::kNone) return nullptr;
  while (true) {
    std::shared_ptr<Sandbox> sb;
    {
      std::lock_guard<std::mutex> lock(mu_);
      warm_lease_ = spec.lease;  // refills go to this lease's CPU share group (see refill_warm)
      auto& pool = warm_[spec.template_name];
      if (pool.empty()) return nullptr;
      sb = std::move(pool.front());
      pool.pop_front();
    }
    if (sb->adopt(spec).is_ok()) return sb;
    sb->destroy();  // e.g. a limit that cannot be applied: try the next, then build one
    destroyed_total_->inc();
  }
}

void SandboxManager::refill_warm() {
  // One sandbox per template per round, so that a template whose creates fail (retried on the next
  // sweep) or a large pool does not starve the others.
  bool added = true;
  while (added && !stopping_.load()) {
    added = false;
    for (const auto& [name, t] : host_.templates) {
      if (stopping_.load()) return;
      // A warm sandbox waits in the CPU share group of the lease that took the last one (the next
      // create most likely comes from the same training job): handing it out to that lease then
      // needs no cgroup migration (an RCU grace period on cgroup v1). Its spec is replaced on
      // hand-out (adopt), so the lease here only places its cgroup.
      SandboxSpec spec;
      spec.template_name = name;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (static_cast<int>(warm_[name].size()) >= warm_target(name)) continue;
        if (leases_.count(warm_lease_)) spec.lease = warm_lease_;
      }
      auto sb = Sandbox::create(host_, new_id("sb-"), spec);
      if (!sb) {
        create_failures_->inc();
        continue;  // retried on the next sweep
      }
      std::lock_guard<std::mutex> lock(mu_);
      warm_[name].push_back(std::move(sb).value());
      added = true;
    }
  }
}

size_t SandboxManager::n_live() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sandboxes_.size();
}

const std::string& SandboxManager::cgroup_description() const { return host_.cgroups->describe(); }
bool SandboxManager::cgroups_enabled() const { return host_.cgroups->version() != CgroupVersion::kNone; }

Status SandboxManager::ensure_egress() {
  std::lock_guard<std::mutex> lock(egress_mu_);
  if (!egress_tried_) {
    egress_tried_ = true;
    std::string name = hex(std::hash<std::string>{}(options_.root), 8);
    auto e = Egress::open(name, options_.egress_subnet);
    if (e) {
      egress_ = std::move(e).value();
      host_.egress = egress_.get();
    } else {
      egress_error_ = e.status().message();
    }
  }
  if (!egress_) return unimplemented("network 'egress' is not available on this host: " + egress_error_);
  return Status::ok();
}

Expected<std::shared_ptr<Sandbox>> SandboxManager::create(const SandboxSpec& spec, QueueTicket* ticket) {
  return create_with(spec, nullptr, {}, ticket);
}

Status SandboxManager::admit(AdmissionQueue& q, const std::string& group, QueueTicket* ticket, const char* what) {
  int64_t wait_ms = ticket && ticket->wait_ms >= 0 ? ticket->wait_ms : options_.queue_timeout_ms;
  auto outcome = q.acquire(group, std::chrono::milliseconds(wait_ms));
  if (outcome == AdmissionQueue::Outcome::kAdmitted) return Status::ok();
  int64_t retry = q.retry_after_s();
  if (ticket) {
    ticket->refused = true;
    ticket->timed_out = outcome == AdmissionQueue::Outcome::kTimedOut;
    ticket->retry_after_s = retry;
  }
  std::string limit = std::string(what) == "create"
                          ? std::to_string(options_.max_sandboxes) + " sandboxes are live (max_sandboxes)"
                          : std::to_string(options_.max_execs) + " commands are running (max_execs)";
  switch (outcome) {
    case AdmissionQueue::Outcome::kTimedOut:
      queue_timeouts_->inc();
      return resource_exhausted("node is full: " + limit + "; waited " + std::to_string(wait_ms) +
                                " ms in the " + what + " queue; retry in " + std::to_string(retry) + " s");
    case AdmissionQueue::Outcome::kClosed:
      return resource_exhausted("the sandbox service is stopping");
    default:
      rejected_full_->inc();
      return resource_exhausted("node is full: " + limit + (wait_ms > 0 ? " and the " + std::string(what) +
                                " queue is full" : "") + "; retry in " + std::to_string(retry) + " s");
  }
}

Expected<std::shared_ptr<Sandbox>> SandboxManager::create_with(const SandboxSpec& spec, const Sandbox::ForkSource* from,
                                                               const std::string& fixed_id, QueueTicket* ticket) {
  if (!host_.templates.count(spec.template_name)) {
    std::string have;
    for (const auto& [name, t] : host_.templates) have += (have.empty() ? "" : ", ") + name;
    return invalid_argument("unknown template '" + spec.template_name + "' (have: " + have + ")");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!spec.lease.empty() && !leases_.count(spec.lease)) return not_found("no lease '" + spec.lease + "'");
  }
  if (spec.network == NetworkMode::kEgress) TIDAL_RETURN_IF_ERROR(ensure_egress());
  // A reset (fixed_id) keeps the slot of the sandbox it replaces.
  if (fixed_id.empty()) TIDAL_RETURN_IF_ERROR(admit(create_slots_, spec.lease, ticket, "create"));
  auto t0 = std::chrono::steady_clock::now();
  // A warm sandbox serves plain creates and copy-on-write forks (rebased onto the parent's layers).
  bool can_use_warm = fixed_id.empty() && (!from || from->copy_from.empty());
  std::shared_ptr<Sandbox> warm = can_use_warm ? take_warm(spec) : nullptr;
  if (warm && from && !warm->rebase(from->stack).is_ok()) {
    warm->destroy();
    destroyed_total_->inc();
    warm = nullptr;
  }
  if (warm) warm_hits_->inc();
  std::string id = warm ? warm->id() : fixed_id.empty() ? new_id("sb-") : fixed_id;
  Expected<std::shared_ptr<Sandbox>> sb =
      warm ? Expected<std::shared_ptr<Sandbox>>(warm)
           : Sandbox::create(host_, id, spec, from ? from->stack : LayerStack{},
                             from ? from->copy_from : std::vector<std::string>{});
  if (warm) sweep_cv_.notify_all();  // refill soon
  std::lock_guard<std::mutex> lock(mu_);
  if (!sb) {
    create_failures_->inc();
    create_slots_.release();
    return sb.status();
  }
  // The lease may have been released while we built the sandbox.
  if (!spec.lease.empty() && !leases_.count(spec.lease)) {
    (*sb)->destroy();
    create_slots_.release();
    return not_found("lease '" + spec.lease + "' was released during creation");
  }
  sandboxes_[id] = *sb;
  created_total_->inc();
  create_seconds_->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return sb;
}

Expected<std::shared_ptr<Sandbox>> SandboxManager::get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return not_found("no sandbox '" + id + "'");
  return it->second;
}

void SandboxManager::destroy_sandbox(const std::shared_ptr<Sandbox>& sb, const char* reason) {
  reaped_->inc(static_cast<uint64_t>(sb->destroy()));
  destroyed_total_->inc();
  create_slots_.release();
  (void)reason;
}

Status SandboxManager::destroy(const std::string& id) {
  std::shared_ptr<Sandbox> sb;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end()) return not_found("no sandbox '" + id + "'");
    sb = std::move(it->second);
    sandboxes_.erase(it);
  }
  destroy_sandbox(sb, "deleted");
  return Status::ok();
}

std::vector<std::shared_ptr<Sandbox>> SandboxManager::list(const std::map<std::string, std::string>& labels) const {
  std::vector<std::shared_ptr<Sandbox>> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, sb] : sandboxes_) {
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = sb->spec().labels.find(k);
      match = match && it != sb->spec().labels.end() && it->second == v;
    }
    if (match) out.push_back(sb);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->created() < b->created(); });
  return out;
}

Expected<ExecResult> SandboxManager::exec(const std::string& id, const ExecRequest& request, const OutputFn& on_output,
                                          QueueTicket* ticket) {
  TIDAL_ASSIGN_OR_RETURN(auto sb, get(id));
  TIDAL_RETURN_IF_ERROR(admit(exec_slots_, sb->spec().lease, ticket, "exec"));
  execs_running_->add(1);
  auto result = sb->exec(request, on_output);
  execs_running_->add(-1);
  exec_slots_.release();
  if (result) {
    execs_total_->inc();
    exec_seconds_->observe(static_cast<double>(result->wall_ms) / 1000.0);
    if (result->timed_out) exec_timeouts_->inc();
    if (result->oom_killed) oom_kills_->inc();
    exec_cpu_ms_->inc(static_cast<uint64_t>(std::max<int64_t>(0, result->cpu_ms)));
    reaped_->inc(static_cast<uint64_t>(std::max(0, result->leftover_processes)));
  }
  return result;
}

Expected<std::shared_ptr<Sandbox>> SandboxManager::fork(const std::string& id) {
  TIDAL_ASSIGN_OR_RETURN(auto source, get(id));
  TIDAL_ASSIGN_OR_RETURN(Sandbox::ForkSource from, source->fork_source());
  auto child = create_with(source->spec(), &from);
  if (child) (from.copy_from.empty() ? forks_cow_ : forks_copied_)->inc();
  return child;
}

Expected<std::shared_ptr<Sandbox>> SandboxManager::reset(const std::string& id) {
  std::shared_ptr<Sandbox> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end()) return not_found("no sandbox '" + id + "'");
    old = std::move(it->second);
    sandboxes_.erase(it);
  }
  old->destroy();
  return create_with(old->spec(), nullptr, id);
}

Expected<ExecResult> SandboxManager::run_once(const RunRequest& request, QueueTicket* ticket) {
  std::vector<std::string> argv;
  std::string script;
  if (request.language == "python" || request.language == "python3") {
    script = "/workspace/main.py";
    argv = {"python3", script};
  } else if (request.language == "bash") {
    script = "/workspace/main.sh";
    argv = {"bash", script};
  } else if (request.language == "sh") {
    script = "/workspace/main.sh";
    argv = {"sh", script};
  } else {
    return invalid_argument("unknown language '" + request.language + "' (have: python, bash, sh)");
  }
  TIDAL_ASSIGN_OR_RETURN(auto sb, create(request.spec, ticket));
  struct Cleanup {
    SandboxManager* m;
    std::string id;
    ~Cleanup() { (void)m->destroy(id); }
  } cleanup{this, sb->id()};
  TIDAL_ASSIGN_OR_RETURN(FileAccess files, sb->files());
  for (const auto& [path, content] : request.files) TIDAL_RETURN_IF_ERROR(files.write(path, content));
  TIDAL_RETURN_IF_ERROR(files.write(script, request.code));
  ExecRequest exec;
  exec.argv = argv;
  exec.stdin_data = request.stdin_data;
  exec.timeout_ms = request.timeout_ms;
  exec.max_output_bytes = request.max_output_bytes;
  return this->exec(sb->id(), exec, {}, ticket);
}

Expected<Lease> SandboxManager::create_lease(int64_t ttl_ms) {
  if (ttl_ms < 100 || ttl_ms > 7LL * 24 * 3600 * 1000) return invalid_argument("lease ttl must be 0.1 s .. 7 days");
  Lease lease;
  lease.id = new_id("lease-");
  lease.ttl_ms = ttl_ms;
  lease.expires = std::chrono::steady_clock::now() + std::chrono::milliseconds(ttl_ms);
  std::lock_guard<std::mutex> lock(mu_);
  leases_[lease.id] = lease;
  return lease;
}

Expected<Lease> SandboxManager::heartbeat(const std::string& lease_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return not_found("no lease '" + lease_id + "' (expired or released)");
  it->second.expires = std::chrono::steady_clock::now() + std::chrono::milliseconds(it->second.ttl_ms);
  return it->second;
}

Status SandboxManager::release_lease(const std::string& lease_id) {
  std::vector<std::shared_ptr<Sandbox>> doomed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!leases_.erase(lease_id)) return not_found("no lease '" + lease_id + "'");
    for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
      if (it->second->spec().lease == lease_id) {
        doomed.push_back(std::move(it->second));
        it = sandboxes_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& sb : doomed) destroy_sandbox(sb, "lease released");
  host_.cgroups->forget_group(lease_id);
  return Status::ok();
}

Expected<int64_t> SandboxManager::lease_cpu_ms(const std::string& lease_id) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!leases_.count(lease_id)) return not_found("no lease '" + lease_id + "' (expired or released)");
  }
  return host_.cgroups->group_cpu_ms(lease_id);
}

size_t SandboxManager::lease_sandboxes(const std::string& lease_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [id, sb] : sandboxes_) n += sb->spec().lease == lease_id;
  return n;
}

std::vector<std::shared_ptr<const RootfsTemplate>> SandboxManager::templates() const {
  std::vector<std::shared_ptr<const RootfsTemplate>> out;
  for (const auto& [name, t] : host_.templates) out.push_back(t);
  return out;
}

void SandboxManager::sweep_loop() {
  while (!stopping_.load()) {
    {
      std::unique_lock<std::mutex> lock(sweep_mu_);
      sweep_cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stopping_.load(); });
    }
    if (stopping_.load()) return;
    refill_warm();
    auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<Sandbox>> doomed;
    std::vector<std::string> expired;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = leases_.begin(); it != leases_.end();) {
        if (it->second.expires <= now) {
          expired.push_back(it->first);
          it = leases_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto it = sandboxes_.begin(); it != sandboxes_.end();) {
        const SandboxSpec& spec = it->second->spec();
        bool lease_gone = !spec.lease.empty() && !leases_.count(spec.lease);
        bool timed_out = spec.timeout_s > 0 && now - it->second->created() >= std::chrono::seconds(spec.timeout_s);
        if (lease_gone || timed_out) {
          doomed.push_back(std::move(it->second));
          it = sandboxes_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& sb : doomed) {
      destroy_sandbox(sb, "expired");
      expired_total_->inc();
    }
    for (const auto& lease : expired) host_.cgroups->forget_group(lease);
  }
}

}  // namespace tidal::sandbox
