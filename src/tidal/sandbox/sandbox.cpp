#include "tidal/sandbox/sandbox.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>

#include <cstring>
#include <signal.h>
#include <unistd.h>

#include "tidal/sandbox/egress.h"
#include "tidal/sandbox/seccomp_filter.h"
#include "tidal/sandbox/spawn_thread.h"

namespace tidal::sandbox {

std::string share_group(const SandboxSpec& spec) {
  return spec.lease.empty() ? std::string(CgroupHost::kNoLease) : spec.lease;
}

const char* network_mode_name(NetworkMode mode) {
  return mode == NetworkMode::kLoopback ? "loopback" : mode == NetworkMode::kEgress ? "egress" : "none";
}

Sandbox::Sandbox(const Host& host, std::string id, SandboxSpec spec)
    : host_(host), id_(std::move(id)), spec_(std::move(spec)), created_(std::chrono::steady_clock::now()) {
  created_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
}

Sandbox::~Sandbox() { destroy(); }

Expected<std::shared_ptr<Sandbox>> Sandbox::create(const Host& host, std::string id, const SandboxSpec& spec,
                                                   const LayerStack& lowers, const std::vector<std::string>& copy_from) {
  auto tmpl = host.templates.find(spec.template_name);
  if (tmpl == host.templates.end()) return invalid_argument("unknown template '" + spec.template_name + "'");
  std::shared_ptr<Sandbox> sb(new Sandbox(host, std::move(id), spec));
  sb->template_ = tmpl->second;
  TIDAL_ASSIGN_OR_RETURN(Rootfs rootfs, Rootfs::create(host.root, sb->id_, spec.disk_mb, host.uid_base,
                                                       host.gid_base, sb->template_->lower(), lowers, copy_from));
  sb->rootfs_ = std::make_unique<Rootfs>(std::move(rootfs));
  sb->alive_ = true;  // from here on destroy() cleans up
  CgroupLimits limits;
  limits.cpu_millis = spec.cpu_millis;
  limits.memory_bytes = spec.memory_mb << 20;
  limits.pids = spec.pids;
  auto cgroup = host.cgroups->create(sb->id_, limits, share_group(spec));
  if (!cgroup) {
    sb->destroy();
    return cgroup.status();
  }
  sb->cgroup_ = std::move(cgroup).value();
  InitConfig config;
  config.merged = sb->rootfs_->merged();
  config.binds = sb->template_->binds();
  config.network = spec.network;
  config.uid_base = host.uid_base;
  config.gid_base = host.gid_base;
  config.cgroup_procs = sb->cgroup_->procs_files();
  config.filter = host.filter;
  auto init = host.spawner->run([&config] { return InitProcess::start(config); });
  if (!init) {
    sb->destroy();
    return init.status();
  }
  sb->init_ = std::move(init).value();
  if (spec.network == NetworkMode::kEgress) {
    Status s = host.egress ? Status::ok() : unimplemented("network 'egress' is not available on this host");
    if (s.is_ok()) {
      auto slot = host.egress->attach(sb->init_->pid());
      if (slot) sb->egress_slot_ = *slot;
      else s = slot.status();
    }
    if (s.is_ok() && !host.egress->resolv_conf().empty()) {
      s = FileAccess(sb->rootfs_->merged(), host.uid_base, host.gid_base).write("/etc/resolv.conf", host.egress->resolv_conf());
    }
    if (!s.is_ok()) {
      sb->destroy();
      return s;
    }
  }
  return sb;
}

SandboxInfo Sandbox::info() const {
  SandboxInfo info;
  info.id = id_;
  info.spec = spec_;
  info.created_unix_ms = created_unix_ms_;
  info.n_execs = n_execs_.load();
  info.execs_running = execs_running_.load();
  std::shared_lock<std::shared_mutex> lock(mu_);
  info.alive = alive_ && init_ != nullptr;
  info.paused = paused_;
  if (init_) info.init_pid = init_->pid();
  if (cgroup_) {
    info.memory_bytes = cgroup_->memory_bytes();
    info.cpu_ms = cgroup_->cpu_ms();
    info.oom_kills = cgroup_->oom_kills();
  }
  return info;
}

Status Sandbox::swap_layers_locked(const LayerStack& stack) {
  TIDAL_RETURN_IF_ERROR(rootfs_->prepare_remount(stack));
  return swap_prepared_locked();
}

Status Sandbox::swap_prepared_locked() {
  int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, rootfs_->next().c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree < 0) {
    Status s = io_error("open_tree " + rootfs_->next() + ": " + std::strerror(errno));
    rootfs_->abort_remount();
    rootfs_->thaw();
    return s;
  }
  std::vector<std::string> binds;
  for (const auto& b : template_->binds()) binds.push_back(b.path);
  Status s = init_->replace_root(tree, binds);
  ::close(tree);
  if (!s.is_ok()) {
    rootfs_->abort_remount();
    rootfs_->thaw();
    return s;
  }
  rootfs_->finish_remount();
  return Status::ok();
}

Expected<Sandbox::ForkSource> Sandbox::fork_source() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!alive_ || !init_) return not_found("sandbox " + id_ + " was destroyed");
  ForkSource src;
  auto copy_instead = [&] {
    src.stack.clear();
    src.keep = rootfs_->lowers();
    src.copy_from = {rootfs_->upper()};
    for (const auto& layer : src.keep) src.copy_from.push_back(layer->path());
    return src;
  };
  // Commands running in the old root would keep writing to a frozen layer: copy instead.
  if (paused_ || execs_running_.load() > 0) return copy_instead();
  TIDAL_ASSIGN_OR_RETURN(src.stack, rootfs_->freeze_stack());
  if (src.stack == rootfs_->lowers()) return src;  // nothing written since the last fork
  // A remount that fails before the swap leaves the sandbox as it was: copy instead.
  if (!rootfs_->prepare_remount(src.stack).is_ok()) {
    rootfs_->thaw();
    return copy_instead();
  }
  Status s = swap_prepared_locked();
  if (!s.is_ok()) return internal_error("fork of " + id_ + ": " + s.message());
  return src;
}

Status Sandbox::rebase(const LayerStack& stack) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!alive_ || !init_) return not_found("sandbox " + id_ + " was destroyed");
  if (stack == rootfs_->lowers()) return Status::ok();
  return swap_layers_locked(stack);
}

Expected<ExecResult> Sandbox::exec(const ExecRequest& request, const OutputFn& on_output) {
  uint64_t oom_before = 0;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (!alive_ || !init_) return not_found("sandbox " + id_ + " was destroyed");
    if (paused_) return invalid_argument("sandbox " + id_ + " is paused; resume it first");
    oom_before = cgroup_->oom_kills();
    n_execs_.fetch_add(1);
    execs_running_.fetch_add(1);
  }
  // The lock is held only while the init forks the tree; the command runs without it, and
  // destroy() kills it along with the sandbox.
  auto spawn = [this](const std::string& message, const int fds[4]) -> Expected<int> {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (!alive_ || !init_) return not_found("sandbox " + id_ + " was destroyed");
    if (paused_) return invalid_argument("sandbox " + id_ + " is paused; resume it first");
    return init_->spawn(message, fds);
  };
  Expected<ExecResult> result = ExecRunner::run(spawn, spec_.env, request, on_output);
  execs_running_.fetch_sub(1);
  if (result && result->signal == SIGKILL && !result->timed_out) {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (cgroup_ && cgroup_->oom_kills() > oom_before) result->oom_killed = true;
  }
  return result;
}

Expected<FileAccess> Sandbox::files() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (!alive_ || !rootfs_) return not_found("sandbox " + id_ + " was destroyed");
  return FileAccess(rootfs_->merged(), host_.uid_base, host_.gid_base);
}

Status Sandbox::adopt(const SandboxSpec& spec) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!alive_) return not_found("sandbox " + id_ + " was destroyed");
  if (spec.network != spec_.network || spec.template_name != spec_.template_name) {
    return invalid_argument("a warm sandbox cannot change its network or template");
  }
  CgroupLimits limits;
  limits.cpu_millis = spec.cpu_millis;
  limits.memory_bytes = spec.memory_mb << 20;
  limits.pids = spec.pids;
  // A lease's sandboxes share its CPU group: a warm sandbox handed to a lease moves there.
  TIDAL_RETURN_IF_ERROR(cgroup_->regroup(share_group(spec), limits));
  if (spec.disk_mb != spec_.disk_mb) {
    std::string opts = "size=" + std::to_string(spec.disk_mb) + "m";
    if (mount(nullptr, rootfs_->dir().c_str(), nullptr, MS_REMOUNT | MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      return io_error("resize tmpfs " + rootfs_->dir() + ": " + std::strerror(errno));
    }
  }
  spec_ = spec;
  created_ = std::chrono::steady_clock::now();
  created_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  return Status::ok();
}

Status Sandbox::pause() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!alive_) return not_found("sandbox " + id_ + " was destroyed");
  if (paused_) return Status::ok();
  TIDAL_RETURN_IF_ERROR(cgroup_->freeze(true));
  paused_ = true;
  return Status::ok();
}

Status Sandbox::resume() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!alive_) return not_found("sandbox " + id_ + " was destroyed");
  if (!paused_) return Status::ok();
  TIDAL_RETURN_IF_ERROR(cgroup_->freeze(false));
  paused_ = false;
  return Status::ok();
}

int Sandbox::destroy() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (!alive_) return 0;
  alive_ = false;
  const int processes = cgroup_ ? static_cast<int>(cgroup_->pids().size()) : 0;
  // A frozen init would never die (SIGKILL waits for the thaw): thaw first.
  if (paused_ && cgroup_) (void)cgroup_->freeze(false);
  paused_ = false;
  if (init_) init_->kill();  // the pid namespace dies with its init
  if (egress_slot_ >= 0 && host_.egress) host_.egress->detach(egress_slot_);
  egress_slot_ = -1;
  if (cgroup_) {
    (void)cgroup_->kill_all();  // anything that joined the cgroup but not the namespace yet
    (void)cgroup_->remove();
  }
  if (rootfs_) Rootfs::destroy_dir(rootfs_->dir());
  init_.reset();
  cgroup_.reset();
  rootfs_.reset();
  return processes;
}

}  // namespace tidal::sandbox
