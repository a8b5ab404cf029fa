// SeccompFilter: the syscall filter every sandboxed command runs under (libseccomp, compiled once).
//
// Denied with EPERM: mount and friends (mount, umount2, pivot_root, fsopen, fsmount, fsconfig,
// fspick, move_mount, open_tree, mount_setattr), namespace changes (unshare, setns, clone/clone3
// creating namespaces), ptrace, process_vm_readv/writev, kexec_*, bpf, perf_event_open, keyctl,
// add_key, request_key, module loading (init_module, finit_module, delete_module), reboot, swapon,
// swapoff, syslog, acct, quotactl, open_by_handle_at, name_to_handle_at, userfaultfd, iopl, ioperm,
// lookup_dcookie, settimeofday/clock_settime/adjtimex, and the TIOCSTI ioctl. clone3 returns ENOSYS
// so libc falls back to clone(), whose flags the filter can inspect. Non-native ABIs (i386, x32)
// kill the process.
//
// Thread-safety: build() once; install() is async-signal-safe (one prctl) and may be called in a
// forked child of a multi-threaded process.
#pragma once

#include <linux/filter.h>

#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

class SeccompFilter {
 public:
  [[nodiscard]] static Expected<SeccompFilter> build();
  // Installs the filter on the calling thread. Requires no_new_privs (or CAP_SYS_ADMIN).
  // Returns 0 or -errno. Async-signal-safe.
  int install() const;
  size_t n_instructions() const { return program_.size(); }

 private:
  std::vector<sock_filter> program_;
};

}  // namespace tidal::sandbox
