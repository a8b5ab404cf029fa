// Helpers for code that runs in a child forked from the multi-threaded daemon, before execve.
//
// Contract: every function here is async-signal-safe (raw syscalls only: no allocation, no locks,
// no stdio), because after fork() in a multi-threaded process another thread may have held the
// malloc lock at the moment of the fork.
//
// NOTE: the sandbox init is made with clone(), so glibc in it still believes the daemon's threads
// exist and its internal locks may be copied in the locked state. glibc's setresuid()/setgroups()
// (which broadcast to "all threads") and fork() (atfork handlers, malloc locks) can then block
// forever. The init and everything it forks therefore use the raw syscalls below instead.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

// Code that runs in clone()d children (on a stack the sanitizers did not set up) is built without
// sanitizer instrumentation: an instrumented call there makes ASan print warnings to fd 2, which in
// those processes is a command's stderr or the init's control socket.
#define TIDAL_CHILD_CODE __attribute__((no_sanitize_address, no_sanitize_undefined))

namespace tidal::sandbox::child {

// A record a child writes to its status pipe (one write() < PIPE_BUF: atomic).
struct StatusRecord {
  int32_t kind = 0;  // kResult or kSetupError
  int32_t step = 0;  // index into the caller's step names (kSetupError)
  int32_t err = 0;   // errno (kSetupError)
  int32_t wait_status = 0;
  int64_t cpu_us = 0;
  int32_t leftovers = 0;  // kResult: processes still in the command's pid namespace when it exited
  int32_t reserved = 0;
};
constexpr int32_t kResult = 1;
constexpr int32_t kSetupError = 2;

// fork() without glibc's bookkeeping (see the NOTE above). The child shares nothing with the
// parent but a copy of its memory; it must not use pthread functions, raise() or abort().
TIDAL_CHILD_CODE inline pid_t raw_fork() { return static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)); }

// Runs fn(arg) in a child that shares this process's memory (clone with CLONE_VM | CLONE_VFORK):
// no copy of the page tables, which is most of the cost of a fork here (a sandbox init carries a
// copy of the daemon's address space: hundreds of mappings). This process is suspended until the
// child calls execve or exits, so the child may use `stack` and read our memory. fn must not
// return (it calls execve or _exit) and, like the rest of this header, only uses raw syscalls.
TIDAL_CHILD_CODE inline pid_t vfork_call(int (*fn)(void*), void* arg, char* stack, size_t stack_size) {
  return static_cast<pid_t>(clone(fn, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, arg));
}

// setresgid(0..)/setresuid(0..)/setgroups(0) as raw syscalls (no multi-thread broadcast).
TIDAL_CHILD_CODE inline int become_root() {
  if (syscall(SYS_setgroups, 0, nullptr) != 0 && errno != EPERM) return -errno;
  if (syscall(SYS_setresgid, 0, 0, 0) != 0 || syscall(SYS_setresuid, 0, 0, 0) != 0) return -errno;
  return 0;
}

TIDAL_CHILD_CODE inline void write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

[[noreturn]] TIDAL_CHILD_CODE inline void fail(int status_fd, int step, int err, int exit_code = 127) {
  StatusRecord r;
  r.kind = kSetupError;
  r.step = step;
  r.err = err;
  write_all(status_fd, &r, sizeof(r));
  _exit(exit_code);
}

// Moves fds[i] to descriptor i (for i < n) and closes every other descriptor. Returns false on
// failure. Two phases (via descriptors >= 64) so a source never clobbers another source.
TIDAL_CHILD_CODE inline bool arrange_fds(int* fds, int n) {
  int tmp[32];
  if (n > 32) return false;
  for (int i = 0; i < n; ++i) {
    tmp[i] = fds[i] < 0 ? -1 : fcntl(fds[i], F_DUPFD, 64);
    if (fds[i] >= 0 && tmp[i] < 0) return false;
  }
  for (int i = 0; i < n; ++i) {
    if (tmp[i] >= 0 && dup2(tmp[i], i) < 0) return false;
  }
  for (int i = 0; i < n; ++i) {
    if (tmp[i] < 0) ::close(i);
  }
  return syscall(SYS_close_range, static_cast<unsigned>(n), ~0U, 0) == 0;
}

// Drops every capability (bounding, effective, permitted, inheritable, ambient).
TIDAL_CHILD_CODE inline int drop_capabilities() {
  for (int cap = 0; cap <= 63; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &header, data) != 0) return -errno;
  return 0;
}

// Resets signal dispositions and the mask inherited from the daemon's threads.
TIDAL_CHILD_CODE inline void reset_signals() {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// True when the write end of `life_fd`'s pipe is closed (the process holding it died).
TIDAL_CHILD_CODE inline bool parent_gone(int life_fd) {
  pollfd p{life_fd, POLLIN, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

}  // namespace tidal::sandbox::child
