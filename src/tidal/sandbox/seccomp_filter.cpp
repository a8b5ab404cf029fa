#include "tidal/sandbox/seccomp_filter.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>

namespace tidal::sandbox {

namespace {
struct CtxGuard {
  scmp_filter_ctx ctx;
  ~CtxGuard() { seccomp_release(ctx); }
};

const char* const kDenied[] = {
    "mount", "umount", "umount2", "pivot_root", "fsopen", "fsmount", "fsconfig", "fspick",
    "move_mount", "open_tree", "mount_setattr", "unshare", "setns", "ptrace",
    "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load", "bpf",
    "perf_event_open", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "quotactl_fd",
    "open_by_handle_at", "name_to_handle_at", "userfaultfd", "iopl", "ioperm", "lookup_dcookie",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "chroot", "nfsservctl",
    "vhangup", "pidfd_getfd", "fanotify_init"};
}  // namespace

Expected<SeccompFilter> SeccompFilter::build() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return internal_error("seccomp_init failed");
  CtxGuard guard{ctx};
  for (const char* name : kDenied) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture/kernel headers
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    if (rc < 0) return internal_error(std::string("seccomp rule for ") + name + ": " + std::strerror(-rc));
  }
  // clone() creating any namespace: one rule per flag (a rule matches "all bits of mask set").
  int rc = 0;
  for (uint64_t flag : {uint64_t(CLONE_NEWUSER), uint64_t(CLONE_NEWNS), uint64_t(CLONE_NEWPID),
                        uint64_t(CLONE_NEWNET), uint64_t(CLONE_NEWIPC), uint64_t(CLONE_NEWUTS),
                        uint64_t(CLONE_NEWCGROUP)}) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
    if (rc < 0) return internal_error(std::string("seccomp clone rule: ") + std::strerror(-rc));
  }
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc < 0) return internal_error(std::string("seccomp clone3 rule: ") + std::strerror(-rc));
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                        SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
  if (rc < 0) return internal_error(std::string("seccomp ioctl rule: ") + std::strerror(-rc));

  // libseccomp 2.5 exports BPF only to a file descriptor: go through a memfd.
  int fd = memfd_create("tidal-seccomp", MFD_CLOEXEC);
  if (fd < 0) return internal_error(std::string("memfd_create: ") + std::strerror(errno));
  rc = seccomp_export_bpf(ctx, fd);
  if (rc < 0) {
    close(fd);
    return internal_error(std::string("seccomp_export_bpf: ") + std::strerror(-rc));
  }
  off_t size = lseek(fd, 0, SEEK_END);
  SeccompFilter filter;
  filter.program_.resize(static_cast<size_t>(size) / sizeof(sock_filter));
  ssize_t n = pread(fd, filter.program_.data(), static_cast<size_t>(size), 0);
  close(fd);
  if (n != size || size == 0 || size % sizeof(sock_filter) != 0) {
    return internal_error("seccomp: short BPF export");
  }
  return filter;
}

__attribute__((no_sanitize_address, no_sanitize_undefined)) int SeccompFilter::install() const {
  sock_fprog prog{static_cast<unsigned short>(program_.size()),
                  const_cast<sock_filter*>(program_.data())};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return -errno;
  return 0;
}

}  // namespace tidal::sandbox
