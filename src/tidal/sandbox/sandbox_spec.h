// SandboxSpec: what a client asks for when it creates a sandbox (validated by the API layer).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace tidal::sandbox {

enum class NetworkMode {
  kNone,      // a private network namespace with no interfaces up (not even loopback)
  kLoopback,  // a private network namespace with `lo` up: 127.0.0.1 inside only
  kEgress,    // `lo` plus eth0, a veth to the host, NATed outbound (see egress.h)
};

const char* network_mode_name(NetworkMode mode);

struct SandboxSpec {
  std::string template_name = "host";  // the only template in this slice (see rootfs.h)
  int64_t cpu_millis = 1000;    // CPU quota in thousandths of a core (1000 = one core)
  int64_t memory_mb = 512;      // memory limit (cgroup); tmpfs disk pages count against it too
  int64_t pids = 256;           // max tasks in the sandbox (fork-bomb bound)
  int64_t disk_mb = 1024;       // size of the writable layer (a tmpfs)
  int64_t timeout_s = 0;        // sandbox lifetime; 0: until deleted (or its lease expires)
  NetworkMode network = NetworkMode::kNone;
  std::map<std::string, std::string> env;     // added to every exec's environment
  std::map<std::string, std::string> labels;  // free-form, for listing and filtering
  std::string lease;                          // lease id ("" none); see SandboxManager
};

// Limits the API accepts; out-of-range values are a 400, not a clamp.
struct SpecBounds {
  static constexpr int64_t kMinCpuMillis = 10, kMaxCpuMillis = 64000;
  static constexpr int64_t kMinMemoryMb = 16, kMaxMemoryMb = 256 * 1024;
  static constexpr int64_t kMinPids = 8, kMaxPids = 65536;
  static constexpr int64_t kMinDiskMb = 1, kMaxDiskMb = 1024 * 1024;
  static constexpr int64_t kMaxTimeoutS = 7 * 24 * 3600;
};

}  // namespace tidal::sandbox
