// Sandbox: one live, isolated process tree with its own root filesystem (see init_process.h for
// the namespaces, rootfs.h for the filesystem, cgroup.h for limits, exec_runner.h for commands).
//
// Ownership: the SandboxManager creates sandboxes and hands out shared_ptrs; a Sandbox stays valid
// while anyone holds one, but after destroy() every exec fails with kNotFound and the files API
// with kNotFound. Thread-safety: exec() may run concurrently (many commands at once); files() and
// info() are safe from any thread; destroy() may race with exec() (running commands are killed).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>

#include "tidal/core/status.h"
#include "tidal/sandbox/cgroup.h"
#include "tidal/sandbox/exec_runner.h"
#include "tidal/sandbox/file_access.h"
#include "tidal/sandbox/init_process.h"
#include "tidal/sandbox/rootfs.h"
#include "tidal/sandbox/rootfs_template.h"
#include "tidal/sandbox/sandbox_spec.h"

namespace tidal::sandbox {

class Egress;
class SeccompFilter;
class SpawnThread;

// The CPU share group of a sandbox (cgroup.h): its lease, or CgroupHost::kNoLease.
std::string share_group(const SandboxSpec& spec);

struct SandboxInfo {
  std::string id;
  SandboxSpec spec;
  int64_t created_unix_ms = 0;
  int init_pid = 0;        // host pid of the sandbox's init (0 once destroyed)
  int64_t n_execs = 0;     // execs started so far
  int64_t execs_running = 0;
  int64_t memory_bytes = 0;  // current cgroup memory use (0 without cgroups)
  int64_t cpu_ms = 0;        // total CPU used (0 without cgroups)
  uint64_t oom_kills = 0;
  bool alive = false;
  bool paused = false;
};

class Sandbox {
 public:
  // Everything a sandbox needs from the daemon; owned by the SandboxManager, outlives sandboxes.
  struct Host {
    std::string root;  // the daemon's root directory
    // Root filesystem templates by name ("host" always; more from ManagerOptions::templates).
    std::map<std::string, std::shared_ptr<const RootfsTemplate>> templates;
    uint32_t uid_base = 0, gid_base = 0;
    std::shared_ptr<CgroupHost> cgroups;
    const SeccompFilter* filter = nullptr;
    SpawnThread* spawner = nullptr;
    Egress* egress = nullptr;  // null until the first egress sandbox (and when unavailable)
  };

  // Builds the filesystem over `lowers` (frozen layers of a fork's parent, top first; see
  // rootfs.h) and the template spec.template_name (kInvalidArgument when the host has no such
  // template), copying the merged contents of `copy_from` (layer directories, top first) into the
  // writable layer when given (the copying fork), then the cgroup and the init. On failure
  // everything built so far is torn down.
  [[nodiscard]] static Expected<std::shared_ptr<Sandbox>> create(const Host& host, std::string id,
                                                                 const SandboxSpec& spec,
                                                                 const LayerStack& lowers = {},
                                                                 const std::vector<std::string>& copy_from = {});
  ~Sandbox();

  const std::string& id() const { return id_; }
  // The spec and creation time change only in adopt(), before the sandbox is shared.
  const SandboxSpec& spec() const { return spec_; }
  std::chrono::steady_clock::time_point created() const { return created_; }
  SandboxInfo info() const;
  // What a fork's child is built from. Copy-on-write when the sandbox is idle (no command running,
  // not paused): its writable layer is frozen into `stack` (the sandbox itself continues on a
  // fresh layer above it, its init's root swapped in place) and the child mounts `stack`.
  // Otherwise `copy_from` names the layers whose merged contents the child copies (`keep` holds
  // them open meanwhile).
  struct ForkSource {
    LayerStack stack;
    std::vector<std::string> copy_from;
    LayerStack keep;
  };
  [[nodiscard]] Expected<ForkSource> fork_source();
  // Puts a fresh (warm, unused) sandbox on `stack`: new empty writable layer over it, the init's
  // root swapped in place. Used to hand a warm sandbox out as a fork's child.
  [[nodiscard]] Status rebase(const LayerStack& stack);
  // Runs a command (see ExecRunner). kNotFound once destroyed. Sets oom_killed when the command
  // died of SIGKILL while the sandbox's OOM-kill count rose.
  [[nodiscard]] Expected<ExecResult> exec(const ExecRequest& request, const OutputFn& on_output = {});
  // File access on the sandbox's root (kNotFound once destroyed).
  [[nodiscard]] Expected<FileAccess> files() const;
  // Freezes / thaws every process (cgroup freezer). While paused, exec() fails (kInvalidArgument)
  // and the files API still works. kUnimplemented without a freezer cgroup.
  [[nodiscard]] Status pause();
  [[nodiscard]] Status resume();
  // Kills every process, removes the cgroup and the filesystem. Idempotent.
  // Returns how many processes the sandbox still had (its init and whatever its commands run; 0
  // without cgroups, or when it was destroyed already): all killed and reaped.
  int destroy();
  // Hands a warm (pre-created, unused) sandbox to a client: applies `spec`'s limits (cgroup, disk
  // size), takes its env, labels, lease and timeout, and restarts its clock. The network mode and
  // template must match the ones it was created with (kInvalidArgument otherwise).
  [[nodiscard]] Status adopt(const SandboxSpec& spec);

 private:
  Sandbox(const Host& host, std::string id, SandboxSpec spec);
  // Remounts on `stack` with a fresh upper and swaps the init's root; mu_ held exclusively.
  Status swap_layers_locked(const LayerStack& stack);
  Status swap_prepared_locked();  // after rootfs_->prepare_remount()

  const Host& host_;
  std::string id_;
  SandboxSpec spec_;
  std::chrono::steady_clock::time_point created_;
  int64_t created_unix_ms_ = 0;

  mutable std::shared_mutex mu_;  // shared: exec spawn, files; exclusive: destroy
  bool alive_ = false;
  bool paused_ = false;
  std::shared_ptr<const RootfsTemplate> template_;
  std::unique_ptr<Rootfs> rootfs_;
  std::unique_ptr<Cgroup> cgroup_;
  std::unique_ptr<InitProcess> init_;
  int egress_slot_ = -1;  // Egress::attach() slot of an egress sandbox
  std::atomic<int64_t> n_execs_{0};
  std::atomic<int64_t> execs_running_{0};
};

}  // namespace tidal::sandbox
