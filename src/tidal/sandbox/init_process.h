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
//   - marks itself non-dumpable and no_new_privs (it keeps its capabilities *inside* the sandbox's
//     user namespace: it needs them to give each exec its own pid and mount namespace),
// then reports success and serves spawn requests from the daemon on a private socketpair (see
// exec_tree.h), reaping every child and orphan. Spawning from the init costs one fork: no setns(),
// and no cgroup migration (which on cgroup v1 waits for an RCU grace period, milliseconds).
// The init dies with the daemon (PDEATHSIG of the SpawnThread that created it, and EOF on its
// socket); killing it kills every process in the sandbox (pid namespace).
//
// Sandbox code cannot reach the init: it lives in the sandbox's top pid namespace, every exec in a
// nested one (so it is invisible and unsignalable); it is non-dumpable (no ptrace, no /proc/1/mem);
// its socket is closed in every child.
//
// Thread-safety: start() must run on the SpawnThread. spawn(), kill() and the accessors are safe
// from any thread once start() returned (spawns are serialised); kill() is idempotent.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/sandbox/rootfs.h"
#include "tidal/sandbox/sandbox_spec.h"

namespace tidal::sandbox {

class SeccompFilter;

struct InitConfig {
  std::string merged;                     // the overlay root on the host
  std::vector<HostBind> binds;            // host paths bound read-only
  NetworkMode network = NetworkMode::kNone;
  uint32_t uid_base = 0, gid_base = 0;    // host ids of root inside
  uint32_t id_count = 65536;
  std::vector<std::string> cgroup_procs;  // cgroup.procs files to join before namespaces
  const SeccompFilter* filter = nullptr;  // installed in every command (must outlive the init)
};

class InitProcess {
 public:
  [[nodiscard]] static Expected<std::unique_ptr<InitProcess>> start(const InitConfig& config);
  ~InitProcess();

  pid_t pid() const { return pid_; }
  // Asks the init to start an exec tree for `message` (exec_tree::encode_message) with `fds`
  // (stdin read end, stdout and stderr write ends, status write end) as its descriptors 0..3.
  // Returns a pidfd of the tree's first process X: SIGKILL to it kills the whole exec.
  // kNotFound after kill(); kInternal when the init does not answer (10 s) or cannot fork.
  [[nodiscard]] Expected<int> spawn(const std::string& message, const int fds[4]);
  // Makes `new_root` (a detached mount: open_tree(OPEN_TREE_CLONE) of an overlay) the root of this
  // sandbox's mount namespace: it is attached there, `bind_paths` (the HostBind paths), /proc and
  // /dev move over from the old root, the init's root and cwd move to it (pivot_root), and the old
  // root is detached. Commands started afterwards see the new root; running ones keep the old one
  // (callers make sure none runs). Done by a short-lived helper process that joins the namespace.
  // kInternal naming the failed step; the sandbox may then be unusable (destroy it).
  [[nodiscard]] Status replace_root(int new_root, const std::vector<std::string>& bind_paths);
  // SIGKILLs the init (which kills every process in the sandbox's pid namespace) and reaps it.
  void kill();

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  uint32_t uid_base_ = 0, gid_base_ = 0;  // host ids of root inside
  std::mutex ctl_mu_;  // one spawn exchange at a time
  int ctl_ = -1;       // guarded by ctl_mu_
};

}  // namespace tidal::sandbox
