// ExecTree: the processes of one exec, as created inside a sandbox by its init (child side).
//
//   init (pid 1 of the sandbox; in its namespaces and cgroup) --fork--> X
//   X: unshare(NEWPID | NEWNS)                                --fork--> M
//   M: pid 1 of the exec's own pid namespace (nested in the sandbox's); mounts a /proc for it
//                                                              --fork--> C
//   C: the command: setsid, cwd, no capabilities, no_new_privs, seccomp, execve
// M reaps every orphan of the command; once C exits it reports C's wait status and the CPU time of
// everything it reaped on the status pipe, and exits, upon which the kernel kills whatever the
// command left running (its pid namespace lost its init). X and M carry PDEATHSIG=SIGKILL (M also
// checks a pipe to close the fork/prctl race), so SIGKILL to X (the daemon holds a pidfd) tears
// the whole tree down.
//
// The request travels from the daemon to the init as one SOCK_SEQPACKET message (encode_message)
// with the four pipe ends attached (SCM_RIGHTS). Contract for the child side (decode_message, run):
// async-signal-safe, no allocation: the init is a clone of the multi-threaded daemon.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

class SeccompFilter;

namespace exec_tree {

// Descriptor layout of X, M and C.
constexpr int kStdin = 0, kStdout = 1, kStderr = 2, kStatus = 3, kNumFds = 4;

// Bounds of one request message (argv + env + cwd + PATH candidates).
constexpr size_t kMaxMessageBytes = 128 * 1024;
constexpr size_t kMaxStrings = 8192;  // argv + env + candidates

enum Step { kArrange, kPipe, kFork, kUnshare, kProc, kChdir, kCaps, kNoNewPrivs, kSeccomp, kExec, kNumSteps };
extern const char* const kStepNames[kNumSteps];

// The decoded command: pointers into the message buffer and `slots` (child side).
struct Command {
  const char* cwd = nullptr;
  char** argv = nullptr;        // NULL-terminated
  char** envp = nullptr;        // NULL-terminated
  char** candidates = nullptr;  // NULL-terminated: full paths to try for argv[0]
  const SeccompFilter* filter = nullptr;
};

// Daemon side. kInvalidArgument when the request exceeds the bounds above.
[[nodiscard]] Expected<std::string> encode_message(const std::vector<std::string>& argv,
                                                   const std::vector<std::string>& env,
                                                   const std::string& cwd,
                                                   const std::vector<std::string>& candidates);

// Child side: parses `buf` in place (n bytes, which it NUL-terminates) using `slots` (kMaxStrings
// + 3 pointers). Returns false on a malformed message.
bool decode_message(char* buf, size_t n, char** slots, Command* out);

// Child side, in X with fds 0..3 arranged: builds M and C. Never returns.
[[noreturn]] void run(const Command& command);

}  // namespace exec_tree
}  // namespace tidal::sandbox
