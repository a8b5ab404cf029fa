// Cgroup limits for sandboxes, on cgroup v1 (per-controller hierarchies) or v2 (unified).
//
// CgroupHost::detect() looks at /proc/self/mountinfo and /proc/self/cgroup once at start-up and
// creates a base group (e.g. "tidal-sandbox-<hash>") under the daemon's own group in each hierarchy it can write.
// When neither version is usable (read-only cgroupfs, v2 without delegated controllers), the host
// is kNone and every limit below is skipped: sandboxes still run, with no CPU/memory/pids limit,
// and describe() says why. That degradation is reported by /health.
//
// A Cgroup is one sandbox's group. Its processes join by writing to procs_files() (the init writes
// "0" there from the forked child, before entering the sandbox's namespaces).
//
// CPU fair share per lease: every sandbox belongs to a *share group* (its lease id, or kNoLease for
// sandboxes without a lease), one cgroup level between the base and the sandbox in the hierarchies
// that schedule CPU: "<base>/<group>/<id>" in cpu and cpuacct on v1 (memory, pids and freezer stay
// "<base>/<id>"), and in the single tree on v2. Share groups keep the kernel's default weight (v1
// cpu.shares 1024, v2 cpu.weight 100), so groups contending for the CPU get equal time whatever the
// number of sandboxes in each; inside a group, sandboxes share in proportion to cpu_millis. A share
// group is created with its first sandbox and removed with its last (reference-counted by the
// CgroupHost); its CPU time is kept (group_cpu_ms) until forget_group().
//
// All cgroupfs access goes through a CgroupFs (real system calls by default), so that a test can
// run this code against a fake kernel on a plain directory (tests/sandbox/cgroup_test.cpp):
// detect_from() takes the texts of /proc/self/mountinfo and /proc/self/cgroup and a CgroupFs.
//
// Thread-safety: a Cgroup's methods may be called from any thread (one at a time per Cgroup for
// regroup/remove); they only read and write cgroupfs files. CgroupHost's methods are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

enum class CgroupVersion { kNone, kV1, kV2 };

struct CgroupLimits {
  // CPU: a hard quota (cpu_millis/1000 of a core per period) and, under contention, a share
  // proportional to it (v1 cpu.shares = cpu_shares(), v2 cpu.weight = cpu_weight()).
  int64_t cpu_millis = 0;  // 0: no CPU quota
  int64_t memory_bytes = 0;
  int64_t pids = 0;
};

// The CPU share of a sandbox asking for `cpu_millis`: 1000 (one core) is the kernel's default
// weight (1024 shares on v1, 100 on v2), so sandboxes share a contended CPU in proportion.
int64_t cpu_shares(int64_t cpu_millis);
int64_t cpu_weight(int64_t cpu_millis);

class CgroupHost;

// The file-system operations done on cgroupfs. The default implementation is the system calls;
// like them, the bool-returning ones set errno when they fail.
class CgroupFs {
 public:
  virtual ~CgroupFs() = default;
  // Writes `value` to an existing interface file (opened for writing, never created).
  virtual bool write(const std::string& path, const std::string& value);
  virtual std::string read(const std::string& path);  // "" when unreadable
  virtual bool exists(const std::string& path);
  virtual bool mkdir(const std::string& path);  // EEXIST when it exists
  virtual bool rmdir(const std::string& path);
  virtual std::vector<std::string> child_dirs(const std::string& dir);  // full paths
  virtual bool kill(int pid, int sig);
  // The process-wide instance of the default implementation.
  static const std::shared_ptr<CgroupFs>& system();
};

class Cgroup {
 public:
  // The files a process writes its pid (or "0" for itself) to, to join this group.
  const std::vector<std::string>& procs_files() const { return procs_files_; }
  // Number of OOM kills in this group so far (0 when unknown).
  uint64_t oom_kills() const;
  // CPU time used by the group so far, in milliseconds (0 when unknown).
  int64_t cpu_ms() const;
  // Current memory use in bytes (0 when unknown).
  int64_t memory_bytes() const;
  // Pids of every process in the group.
  std::vector<int> pids() const;
  // SIGKILLs every process in the group (freezing it first, so none can fork meanwhile) and waits
  // (up to ~2 s) until it is empty.
  Status kill_all();
  // Removes the group directories. The group must be empty (call kill_all() first).
  Status remove();
  // Freezes or thaws the group (pause/resume). On v2 a freeze waits (up to 0.5 s) until
  // cgroup.events reports it complete.
  Status freeze(bool frozen);
  // Writes the limits (a limit of 0 is left as it is). kIoError naming the file on failure.
  Status set_limits(const CgroupLimits& limits);
  // Moves the group, with its processes, under share group `group` (a warm sandbox handed to a
  // lease) and applies `limits` there. No-op when it is already there. On failure nothing changed.
  // Costs a cgroup migration of the group's processes (on v1 an RCU grace period, milliseconds).
  Status regroup(const std::string& group, const CgroupLimits& limits);
  const std::string& group() const { return group_; }
  ~Cgroup();

 private:
  friend class CgroupHost;
  std::shared_ptr<CgroupHost> host_;  // null for a kNone host and for cleanup groups
  std::shared_ptr<CgroupFs> fs_ = CgroupFs::system();
  std::string id_, group_;
  bool group_held_ = false;  // holds a reference on host_'s share group `group_`
  CgroupVersion version_ = CgroupVersion::kNone;
  std::vector<std::string> dirs_;  // one per hierarchy (v1) or one (v2)
  std::string memory_dir_, pids_dir_, cpu_dir_, cpuacct_dir_, freezer_dir_;
  std::vector<std::string> procs_files_;
  bool memsw_ = false;
};

class CgroupHost : public std::enable_shared_from_this<CgroupHost> {
 public:
  // The share group of sandboxes without a lease (a lease id never has this form).
  static constexpr const char* kNoLease = "no-lease";

  // Never fails: returns a kNone host (with the reason in describe()) when cgroups are unusable.
  // `base_name` names this daemon's base group; daemons with different roots use different names
  // so that one's cleanup_stale() never touches another's sandboxes.
  static std::shared_ptr<CgroupHost> detect(const std::string& base_name);
  // detect() on given inputs: the texts of /proc/self/mountinfo and /proc/self/cgroup, and the
  // file system the mount points are on (null: the real one). detect() reads the two files and
  // calls this.
  static std::shared_ptr<CgroupHost> detect_from(const std::string& mountinfo_text, const std::string& self_cgroup_text,
                                                 const std::string& base_name,
                                                 std::shared_ptr<CgroupFs> fs = nullptr);

  CgroupVersion version() const { return version_; }
  // e.g. "cgroup v1 (memory, pids, cpu, cpuacct, freezer) under /sys/fs/cgroup/*/.../tidal-sandbox"
  // or "none: <reason>".
  const std::string& describe() const { return description_; }

  // Creates sandbox `id`'s group with the limits under share group `group` (a lease id, or
  // kNoLease; see above). kNone host: returns an empty Cgroup (no files).
  [[nodiscard]] Expected<std::unique_ptr<Cgroup>> create(const std::string& id, const CgroupLimits& limits,
                                                         const std::string& group = kNoLease);
  // CPU time (ms) used by the sandboxes of share group `group`: the live group's usage plus that of
  // its earlier incarnations (a group is removed with its last sandbox and made again with the
  // next). 0 for an unknown group or without cgroups.
  int64_t group_cpu_ms(const std::string& group) const;
  // Forgets the CPU time kept for `group` (its lease ended).
  void forget_group(const std::string& group);
  // Share groups that exist now (a test hook).
  size_t n_groups() const;
  // Kills and removes every group under the base (leftovers of a previous daemon). Returns the
  // number of groups removed.
  int cleanup_stale();
  // Removes the (empty) base groups; call when the daemon stops, after every sandbox is destroyed.
  void remove_base();

 private:
  friend class Cgroup;
  // Share groups: the directories that hold sandbox groups in the CPU hierarchies.
  std::vector<std::string> group_bases() const;  // cpu and cpuacct bases (v1) or the v2 base
  Status acquire_group(const std::string& group);  // makes the group's directories on first use
  void release_group(const std::string& group);    // removes them with the last user
  int64_t live_group_cpu_ms(const std::string& group) const;

  CgroupVersion version_ = CgroupVersion::kNone;
  std::shared_ptr<CgroupFs> fs_ = CgroupFs::system();
  std::string description_;
  std::string v2_controllers_;  // "+memory +pids [+cpu]", enabled in every v2 share group
  mutable std::mutex groups_mu_;
  std::map<std::string, int> group_refs_;            // guarded by groups_mu_
  std::map<std::string, int64_t> group_retired_ms_;  // CPU of removed incarnations; groups_mu_
  // v1: base directory per controller ("" when that controller is unavailable).
  std::string memory_base_, pids_base_, cpu_base_, cpuacct_base_, freezer_base_;
  std::string v2_base_;
  bool memsw_ = false;  // v1 memory.memsw.limit_in_bytes exists (swap accounting)
};

}  // namespace tidal::sandbox
