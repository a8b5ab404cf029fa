#include "tidal/sandbox/exec_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "tidal/sandbox/child_setup.h"
#include "tidal/sandbox/seccomp_filter.h"

namespace tidal::sandbox::exec_tree {

const char* const kStepNames[kNumSteps] = {"arrange fds", "pipe", "fork", "unshare pid+mount namespaces",
                                           "mount /proc", "chdir", "drop capabilities", "no_new_privs",
                                           "seccomp", "execve"};

namespace {
constexpr uint32_t kMagic = 0x7e5ec001;

// X (run) is a plain fork of the sandbox init, so it has its own copy of these. Its reaper M and
// M's command share X's memory (vfork_call: X waits for M anyway, and M for the command's execve),
// each on one of these stacks. Two page-table copies per exec fewer than fork(): those copies and
// their teardown were most of an exec's CPU time.
constexpr size_t kChildStack = 64 * 1024;
alignas(64) char g_reaper_stack[kChildStack];
alignas(64) char g_command_stack[kChildStack];

struct Header {
  uint32_t magic;
  uint32_t argc, envc, ncand;
};

[[noreturn]] TIDAL_CHILD_CODE void run_command(const Command& c) {
  setsid();
  child::reset_signals();
  if (chdir(c.cwd) != 0) child::fail(kStatus, kChdir, errno);
  if (child::drop_capabilities() != 0) child::fail(kStatus, kCaps, errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child::fail(kStatus, kNoNewPrivs, errno);
  if (c.filter) {
    int rc = c.filter->install();
    if (rc != 0) child::fail(kStatus, kSeccomp, -rc);
  }
  fcntl(kStatus, F_SETFD, FD_CLOEXEC);  // closed by a successful execve; open to report a failure
  int err = ENOENT;
  for (char** path = c.candidates; *path; ++path) {
    execve(*path, c.argv, c.envp);
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) break;
  }
  child::fail(kStatus, kExec, err);
}

TIDAL_CHILD_CODE int command_entry(void* c) { run_command(*static_cast<const Command*>(c)); }

// The processes of this pid namespace other than its pid 1 (the caller), from its /proc: what the
// command left running (or exited but not reaped yet), killed with the namespace when we exit.
TIDAL_CHILD_CODE int count_other_processes() {
  int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  int n = 0;
  alignas(8) char buf[4096];
  while (true) {
    long got = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (got <= 0) break;
    for (long off = 0; off < got;) {
      // struct linux_dirent64: u64 ino, s64 off, u16 reclen (little-endian here), u8 type, char name[].
      const long reclen = static_cast<unsigned char>(buf[off + 16]) | static_cast<unsigned char>(buf[off + 17]) << 8;
      if (reclen <= 0) break;
      const char* name = buf + off + 19;
      bool numeric = name[0] >= '1' && name[0] <= '9';
      for (const char* p = name; numeric && *p; ++p) numeric = *p >= '0' && *p <= '9';
      if (numeric && !(name[0] == '1' && name[1] == '\0')) ++n;
      off += reclen;
    }
  }
  close(fd);
  return n;
}

// M: pid 1 of the exec's pid namespace.
[[noreturn]] TIDAL_CHILD_CODE void run_reaper(const Command& c, int life_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (child::parent_gone(life_fd)) _exit(1);
  ::close(life_fd);
  // A /proc of this pid namespace (in this exec's mount namespace), so that ps, pgrep and
  // /proc/self agree with getpid(). /proc/sys stays read-only.
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0 ||
      mount("/proc/sys", "/proc/sys", nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
      mount(nullptr, "/proc/sys", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            nullptr) != 0) {
    child::fail(kStatus, kProc, errno);
  }
  pid_t cmd = child::vfork_call(command_entry, const_cast<Command*>(&c), g_command_stack, kChildStack);
  if (cmd < 0) child::fail(kStatus, kFork, errno);
  ::close(kStdin);
  ::close(kStdout);
  ::close(kStderr);
  int wait_status = 0;
  while (true) {
    int st = 0;
    pid_t r = waitpid(-1, &st, __WALL);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    if (r == cmd) {
      wait_status = st;
      break;
    }
  }
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  child::StatusRecord rec;
  rec.leftovers = count_other_processes();
  rec.kind = child::kResult;
  rec.wait_status = wait_status;
  rec.cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
  child::write_all(kStatus, &rec, sizeof(rec));
  _exit(0);  // the kernel kills the rest of this pid namespace
}

struct ReaperArgs {
  const Command* command;
  int life_read, life_write;
};

TIDAL_CHILD_CODE int reaper_entry(void* a) {
  auto* args = static_cast<ReaperArgs*>(a);
  ::close(args->life_write);  // in the reaper's own descriptor table: X keeps its write end
  run_reaper(*args->command, args->life_read);
}
}  // namespace

Expected<std::string> encode_message(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                                     const std::string& cwd, const std::vector<std::string>& candidates) {
  if (argv.size() + env.size() + candidates.size() > kMaxStrings) {
    return invalid_argument("too many arguments and environment variables (max " + std::to_string(kMaxStrings) + ")");
  }
  Header h{kMagic, static_cast<uint32_t>(argv.size()), static_cast<uint32_t>(env.size()),
           static_cast<uint32_t>(candidates.size())};
  std::string msg(reinterpret_cast<const char*>(&h), sizeof(h));
  auto add = [&msg](const std::string& s) -> bool {
    if (s.find('\0') != std::string::npos) return false;
    msg += s;
    msg.push_back('\0');
    return true;
  };
  bool ok = add(cwd);
  for (const auto& s : argv) ok = ok && add(s);
  for (const auto& s : env) ok = ok && add(s);
  for (const auto& s : candidates) ok = ok && add(s);
  if (!ok) return invalid_argument("arguments, environment and cwd must not contain NUL bytes");
  if (msg.size() > kMaxMessageBytes) {
    return invalid_argument("arguments + environment exceed " + std::to_string(kMaxMessageBytes / 1024) + " KiB");
  }
  return msg;
}

TIDAL_CHILD_CODE bool decode_message(char* buf, size_t n, char** slots, Command* out) {
  if (n < sizeof(Header) || n > kMaxMessageBytes) return false;
  Header h;
  std::memcpy(&h, buf, sizeof(h));
  if (h.magic != kMagic || static_cast<size_t>(h.argc) + h.envc + h.ncand > kMaxStrings || h.argc == 0) return false;
  buf[n - 1] = '\0';  // the encoder ends with a NUL; make sure scanning stops in the buffer
  char* p = buf + sizeof(Header);
  char* end = buf + n;
  auto next = [&]() -> char* {
    if (p >= end) return nullptr;
    char* s = p;
    while (p < end && *p) ++p;
    ++p;
    return s;
  };
  out->cwd = next();
  if (!out->cwd) return false;
  size_t slot = 0;
  out->argv = slots + slot;
  for (uint32_t i = 0; i < h.argc; ++i) {
    if (!(slots[slot++] = next())) return false;
  }
  slots[slot++] = nullptr;
  out->envp = slots + slot;
  for (uint32_t i = 0; i < h.envc; ++i) {
    if (!(slots[slot++] = next())) return false;
  }
  slots[slot++] = nullptr;
  out->candidates = slots + slot;
  for (uint32_t i = 0; i < h.ncand; ++i) {
    if (!(slots[slot++] = next())) return false;
  }
  slots[slot++] = nullptr;
  return true;
}

TIDAL_CHILD_CODE void run(const Command& c) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, "tidal-exec");
  // Commands are the preferred OOM victims: before the init (-1000 or 0), and before host
  // processes on a global OOM. Raising one's own score needs no privilege, but /proc/self of a
  // non-dumpable process belongs to the host's root: be dumpable just for this write (nothing of
  // the sandbox can see X: every exec lives in its own nested pid namespace).
  prctl(PR_SET_DUMPABLE, 1);
  int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (adj >= 0) {
    child::write_all(adj, "500", 3);
    close(adj);
  }
  prctl(PR_SET_DUMPABLE, 0);
  if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) child::fail(kStatus, kUnshare, errno);
  int life[2];
  if (pipe2(life, O_CLOEXEC) != 0) child::fail(kStatus, kPipe, errno);
  // Returns when the reaper has exited (it never calls execve): with it the command's pid namespace.
  ReaperArgs reaper_args{&c, life[0], life[1]};
  pid_t reaper = child::vfork_call(reaper_entry, &reaper_args, g_reaper_stack, kChildStack);
  if (reaper < 0) child::fail(kStatus, kFork, errno);
  ::close(life[0]);
  for (int fd = 0; fd < kNumFds; ++fd) ::close(fd);
  while (waitpid(reaper, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  _exit(0);
}

}  // namespace tidal::sandbox::exec_tree
