// ExecRunner: runs one ExecRequest inside a live sandbox and collects its result.
//
// Process tree (H = helper, outside the sandbox's view):
//   daemon --fork--> H1: joins the sandbox cgroup, setns() into ipc, uts, net, cgroup, pid, mnt,
//                        user (in that order), becomes root of the sandbox's user namespace
//          H1 --fork--> H2 (first process inside the sandbox's pid namespace): unshare(NEWPID|NEWNS)
//          H2 --fork--> M  (pid 1 of a per-exec pid namespace nested in the sandbox's; mounts a
//                           /proc for it in the per-exec mount namespace, so ps shows this exec)
//          M  --fork--> C  the command: setsid, cwd, no capabilities, no_new_privs, seccomp, execve
// M reaps every orphan of the command and, once C exits, reports C's wait status and the CPU time
// of everything it reaped, then exits: the kernel then kills whatever the command left running,
// because the pid namespace's init died. Each link has PDEATHSIG=SIGKILL (with a pipe check that
// closes the fork/prctl race), so killing H1 on timeout tears down the whole tree, and nothing
// survives the daemon. Background processes therefore do not outlive their exec (this slice has no
// detached execs).
//
// Thread-safety: run() may be called from many threads at once for the same sandbox; the fork
// itself happens on the SpawnThread. The ns fds must stay open during the call (Sandbox ensures it).
#pragma once

#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/sandbox/exec_request.h"
#include "tidal/sandbox/init_process.h"

namespace tidal::sandbox {

class SeccompFilter;
class SpawnThread;

// Called with output as it arrives: stream 1 = stdout, 2 = stderr. Runs on the calling thread.
using OutputFn = std::function<void(int stream, std::string_view data)>;

struct ExecTarget {
  std::array<int, kNsCount> ns_fds{};
  std::vector<std::string> cgroup_procs;
  const SeccompFilter* filter = nullptr;
  std::map<std::string, std::string> env;  // the sandbox's env (under the request's)
};

class ExecRunner {
 public:
  // Never fails as a call: setup failures inside the sandbox (no such command, bad cwd) come back
  // as exit_code 127 with the reason on stderr, like a shell; a failure to fork at all is kInternal.
  [[nodiscard]] static Expected<ExecResult> run(SpawnThread& spawner, const ExecTarget& target,
                                                const ExecRequest& request, const OutputFn& on_output = {});
};

}  // namespace tidal::sandbox
