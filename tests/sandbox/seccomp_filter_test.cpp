// The seccomp filter, installed in a forked child: denied syscalls fail with EPERM, others work.
#include "tidal/sandbox/seccomp_filter.h"

#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace tidal::sandbox {
namespace {

// Runs `fn` in a child under the filter; returns the child's exit code.
template <class F>
int in_child(const SeccompFilter& filter, F fn) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (filter.install() != 0) _exit(100);
    _exit(fn());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 200 + WTERMSIG(st);
}

TEST(SeccompFilter, BuildsAProgram) {
  auto filter = SeccompFilter::build();
  ASSERT_TRUE(filter.has_value()) << filter.status().to_string();
  EXPECT_GT(filter->n_instructions(), 20u);
}

TEST(SeccompFilter, DeniesEscapeSyscalls) {
  auto filter = SeccompFilter::build();
  ASSERT_TRUE(filter.has_value());
  auto eperm = [](long rc) { return rc == -1 && errno == EPERM ? 0 : 1; };
  EXPECT_EQ(in_child(*filter, [&] { return eperm(mount("none", "/tmp", "tmpfs", 0, nullptr)); }), 0);
  EXPECT_EQ(in_child(*filter, [&] { return eperm(unshare(CLONE_NEWUSER)); }), 0);
  EXPECT_EQ(in_child(*filter, [&] { return eperm(ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)); }), 0);
  EXPECT_EQ(in_child(*filter, [&] { return eperm(syscall(SYS_bpf, 0, nullptr, 0)); }), 0);
  EXPECT_EQ(in_child(*filter, [&] { return eperm(syscall(SYS_keyctl, 0, 0, 0, 0, 0)); }), 0);
  EXPECT_EQ(in_child(*filter, [&] { return eperm(syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0)); }), 0);
  EXPECT_EQ(in_child(*filter, [&] { return eperm(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)); }), 0);
  EXPECT_EQ(in_child(*filter, [&] { return syscall(SYS_clone3, nullptr, 0) == -1 && errno == ENOSYS ? 0 : 1; }), 0);
}

TEST(SeccompFilter, AllowsOrdinaryWork) {
  auto filter = SeccompFilter::build();
  ASSERT_TRUE(filter.has_value());
  EXPECT_EQ(in_child(*filter, [] {
              pid_t p = fork();  // plain fork (clone without namespace flags) still works
              if (p == 0) _exit(7);
              int st = 0;
              waitpid(p, &st, 0);
              return WIFEXITED(st) && WEXITSTATUS(st) == 7 && getpid() > 0 ? 0 : 1;
            }), 0);
}

}  // namespace
}  // namespace tidal::sandbox
