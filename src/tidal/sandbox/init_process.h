// InitProcess: pid 1 of a sandbox; it creates and holds the sandbox's namespaces.
//
// start() clones a child into new user, mount, pid, net, ipc and uts namespaces (and unshares a
// cgroup namespace once the daemon has moved it into the sandbox's cgroup). The daemon maps
// uid/gid 0..65535 inside to uid_base.. outside, so root in a sandbox is an unprivileged user on
// the host. The child then, inside its mount namespace:
//   - makes every mount private, bind-mounts the host binds (HostBind) read-only onto the merged
//     overlay root, mounts a private /proc (with /proc/sys read-only), a tmpfs /dev holding only
//     null, zero, full, random, urandom and tty (bound from the host) plus devpts and /dev/shm,
//   - pivot_root()s into the merged root and detaches the old root,
//   - sets hostname "sandbox", brings `lo` up for NetworkMode::kLoopback,
//   - drops every capability and marks itself non-dumpable,
// then reports success and loops reaping orphans forever. It dies with the daemon (PDEATHSIG of the
// SpawnThread that created it); killing it kills every process in the sandbox (pid namespace).
//
// Thread-safety: start() must run on the SpawnThread. kill() and the accessors are safe from any
// thread once start() returned; kill() is idempotent.
#pragma once

#include <sys/types.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/sandbox/rootfs.h"
#include "tidal/sandbox/sandbox_spec.h"

namespace tidal::sandbox {

// Namespace file descriptors of a sandbox, in the order an exec enters them.
enum NsIndex { kNsIpc = 0, kNsUts, kNsNet, kNsCgroup, kNsPid, kNsMnt, kNsUser, kNsCount };

struct InitConfig {
  std::string merged;                     // the overlay root on the host
  std::vector<HostBind> binds;            // host paths bound read-only
  NetworkMode network = NetworkMode::kNone;
  uint32_t uid_base = 0, gid_base = 0;    // host ids of root inside
  uint32_t id_count = 65536;
  std::vector<std::string> cgroup_procs;  // cgroup.procs files to join before namespaces
};

class InitProcess {
 public:
  [[nodiscard]] static Expected<std::unique_ptr<InitProcess>> start(const InitConfig& config);
  ~InitProcess();

  pid_t pid() const { return pid_; }
  // Namespace fds (O_CLOEXEC), valid until kill().
  const std::array<int, kNsCount>& ns_fds() const { return ns_; }
  // SIGKILLs the init (which kills every process in the sandbox's pid namespace), reaps it and
  // closes the namespace fds.
  void kill();

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::array<int, kNsCount> ns_{-1, -1, -1, -1, -1, -1, -1};
};

}  // namespace tidal::sandbox
