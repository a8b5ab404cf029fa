// Cgroup limits for sandboxes, on cgroup v1 (per-controller hierarchies) or v2 (unified).
//
// CgroupHost::detect() looks at /proc/self/mountinfo and /proc/self/cgroup once at start-up and
// creates a base group (e.g. "tidal-sandbox-<hash>") under the daemon's own group in each hierarchy it can write.
// When neither version is usable (read-only cgroupfs, v2 without delegated controllers), the host
// is kNone and every limit below is skipped: sandboxes still run, with no CPU/memory/pids limit,
// and describe() says why. That degradation is reported by /health.
//
// A Cgroup is one sandbox's group ("<base>/<id>" in each hierarchy). Its processes join by writing
// to procs_files() (the exec path writes "0" there from the forked child, before entering the
// sandbox's namespaces). Thread-safety: a Cgroup's methods may be called from any thread; they only
// read and write cgroupfs files.
#pragma once

#include <cstdint>
#include <memory>
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
  // Freezes or thaws the group (pause/resume).
  Status freeze(bool frozen);
  // Writes the limits (a limit of 0 is left as it is). kIoError naming the file on failure.
  Status set_limits(const CgroupLimits& limits);

 private:
  friend class CgroupHost;
  CgroupVersion version_ = CgroupVersion::kNone;
  std::vector<std::string> dirs_;  // one per hierarchy (v1) or one (v2)
  std::string memory_dir_, pids_dir_, cpu_dir_, cpuacct_dir_, freezer_dir_;
  std::vector<std::string> procs_files_;
  bool memsw_ = false;
};

class CgroupHost {
 public:
  // Never fails: returns a kNone host (with the reason in describe()) when cgroups are unusable.
  // `base_name` names this daemon's base group; daemons with different roots use different names
  // so that one's cleanup_stale() never touches another's sandboxes.
  static std::shared_ptr<CgroupHost> detect(const std::string& base_name);

  CgroupVersion version() const { return version_; }
  // e.g. "cgroup v1 (memory, pids, cpu, cpuacct, freezer) under /sys/fs/cgroup/*/.../tidal-sandbox"
  // or "none: <reason>".
  const std::string& describe() const { return description_; }

  // Creates "<base>/<id>" with the limits. kNone host: returns an empty Cgroup (no files).
  [[nodiscard]] Expected<std::unique_ptr<Cgroup>> create(const std::string& id,
                                                         const CgroupLimits& limits);
  // Kills and removes every group under the base (leftovers of a previous daemon). Returns the
  // number of groups removed.
  int cleanup_stale();
  // Removes the (empty) base groups; call when the daemon stops, after every sandbox is destroyed.
  void remove_base();

 private:
  CgroupVersion version_ = CgroupVersion::kNone;
  std::string description_;
  // v1: base directory per controller ("" when that controller is unavailable).
  std::string memory_base_, pids_base_, cpu_base_, cpuacct_base_, freezer_base_;
  std::string v2_base_;
  bool memsw_ = false;  // v1 memory.memsw.limit_in_bytes exists (swap accounting)
};

}  // namespace tidal::sandbox
