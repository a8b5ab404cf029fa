// ExecRunner: runs one ExecRequest inside a live sandbox and collects its result.
//
// The processes are created by the sandbox's init (see exec_tree.h for the tree and how a timeout
// kills all of it); this is the daemon side: it builds the request, hands the init the pipe ends,
// feeds stdin, collects stdout/stderr up to max_output_bytes (reading and dropping the rest),
// enforces the timeout with SIGKILL to the tree's pidfd, and decodes the status records.
// Background processes do not outlive their exec (this slice has no detached execs).
//
// Thread-safety: run() may be called from many threads at once for the same sandbox.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/sandbox/exec_request.h"

namespace tidal::sandbox {

// Called with output as it arrives: stream 1 = stdout, 2 = stderr. Runs on the calling thread.
using OutputFn = std::function<void(int stream, std::string_view data)>;

// Starts the exec tree: given the encoded request and fds 0..3, returns a pidfd of the tree
// (InitProcess::spawn, behind the Sandbox's lock).
using SpawnFn = std::function<Expected<int>(const std::string& message, const int fds[4])>;

class ExecRunner {
 public:
  // Setup failures inside the sandbox (no such command, bad cwd) are a result, not an error:
  // exit_code 127 with the reason on stderr, like a shell. Errors: kInvalidArgument (empty argv,
  // NUL bytes, argv+env over 128 KiB), kNotFound (sandbox destroyed), kResourceExhausted (the
  // sandbox's pids/memory limit prevents the fork), kInternal (the init does not answer).
  // `sandbox_env` sits between the defaults (PATH, HOME, LANG, ...) and request.env.
  [[nodiscard]] static Expected<ExecResult> run(const SpawnFn& spawn, const std::map<std::string, std::string>& sandbox_env,
                                                const ExecRequest& request, const OutputFn& on_output = {});
};

}  // namespace tidal::sandbox
