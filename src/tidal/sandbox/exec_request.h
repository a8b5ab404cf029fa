// ExecRequest / ExecResult: one command run inside a live sandbox.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tidal::sandbox {

struct ExecRequest {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
  std::string stdin_data;         // written to the command's stdin, then stdin is closed
  std::string cwd = "/workspace";
  std::map<std::string, std::string> env;  // on top of the defaults and the sandbox's env
  int64_t timeout_ms = 30000;              // wall-clock; the whole process tree is killed after it
  int64_t max_output_bytes = 1 << 20;      // per stream; the rest is read and dropped
};

struct ExecResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the terminating signal, 0 when it exited
  std::string stdout_data;
  std::string stderr_data;
  bool truncated = false;   // some output went past max_output_bytes
  bool timed_out = false;   // killed at timeout_ms
  bool oom_killed = false;  // killed by the sandbox's memory limit
  int64_t cpu_ms = 0;       // user+system CPU of the command and every descendant it reaped
  int64_t wall_ms = 0;      // from spawn to the last output byte
  int leftover_processes = 0;  // still running when the command exited: killed with its pid namespace
};

}  // namespace tidal::sandbox
