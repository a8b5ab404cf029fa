#include "tidal/sandbox/init_process.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "tidal/sandbox/child_setup.h"

namespace tidal::sandbox {

namespace {

// Steps of the init's setup, for error messages (index = StatusRecord::step).
const char* const kSteps[] = {
    "arrange fds", "wait for id maps", "setresuid/setresgid", "unshare cgroup namespace",
    "make mounts private", "bind host directory", "remount bind read-only", "mount /proc",
    "remount /proc/sys read-only", "mount /dev tmpfs", "create /dev node", "bind /dev node",
    "mount /dev/pts", "mount /dev/shm", "create /dev symlink", "pivot_root", "detach old root",
    "sethostname", "bring up loopback", "drop capabilities", "chdir /", "bind root onto itself"};
enum Step {
  kArrange, kWaitMaps, kSetIds, kCgroupNs, kPrivate, kBind, kBindRo, kProc, kProcSys, kDevTmpfs,
  kDevNode, kDevBind, kDevPts, kDevShm, kDevLink, kPivot, kDetach, kHostname, kLoopback, kCaps, kChdir, kRootBind
};

// Everything the child needs, as C strings prepared by the parent (the child must not allocate).
struct ChildArgs {
  int sync_in = -1, sync_out = -1;  // parent -> child "go", child -> parent status
  const char* merged = nullptr;
  std::vector<std::string> bind_src, bind_dst;
  std::vector<unsigned long> bind_flags;
  std::string proc, proc_sys, dev, pts, shm, ptmx;
  std::vector<std::string> dev_src, dev_dst;
  std::vector<std::string> link_target, link_path;
  bool loopback = false;
};

int child_main(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  int fds[2] = {a->sync_in, a->sync_out};
  if (!child::arrange_fds(fds, 2)) _exit(126);
  const int in = 0, out = 1;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, "tidal-init");
  char go;
  if (read(in, &go, 1) != 1) child::fail(out, kWaitMaps, errno);
  if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) child::fail(out, kSetIds, errno);
  if (unshare(CLONE_NEWCGROUP) != 0) child::fail(out, kCgroupNs, errno);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child::fail(out, kPrivate, errno);
  // Mounts inherited from the daemon's namespace are locked in ours, and pivot_root refuses a
  // locked new root: bind the merged root onto itself to get a mount we own.
  if (mount(a->merged, a->merged, nullptr, MS_BIND | MS_REC, nullptr) != 0) child::fail(out, kRootBind, errno);
  for (size_t i = 0; i < a->bind_src.size(); ++i) {
    const char* dst = a->bind_dst[i].c_str();
    if (mount(a->bind_src[i].c_str(), dst, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      child::fail(out, kBind, errno);
    }
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | a->bind_flags[i];
    if (mount(nullptr, dst, nullptr, flags, nullptr) != 0) child::fail(out, kBindRo, errno);
  }
  if (mount("proc", a->proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    child::fail(out, kProc, errno);
  }
  if (mount(a->proc_sys.c_str(), a->proc_sys.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
      mount(nullptr, a->proc_sys.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            nullptr) != 0) {
    child::fail(out, kProcSys, errno);
  }
  if (mount("tmpfs", a->dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") != 0) {
    child::fail(out, kDevTmpfs, errno);
  }
  for (size_t i = 0; i < a->dev_src.size(); ++i) {
    int fd = open(a->dev_dst[i].c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) child::fail(out, kDevNode, errno);
    close(fd);
    if (mount(a->dev_src[i].c_str(), a->dev_dst[i].c_str(), nullptr, MS_BIND, nullptr) != 0) {
      child::fail(out, kDevBind, errno);
    }
  }
  if (mkdir(a->pts.c_str(), 0755) != 0 ||
      mount("devpts", a->pts.c_str(), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") != 0) {
    child::fail(out, kDevPts, errno);
  }
  if (mkdir(a->shm.c_str(), 01777) != 0 ||
      mount("shm", a->shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k") != 0) {
    child::fail(out, kDevShm, errno);
  }
  for (size_t i = 0; i < a->link_path.size(); ++i) {
    if (symlink(a->link_target[i].c_str(), a->link_path[i].c_str()) != 0) child::fail(out, kDevLink, errno);
  }
  if (chdir(a->merged) != 0 || syscall(SYS_pivot_root, ".", ".") != 0) child::fail(out, kPivot, errno);
  if (umount2(".", MNT_DETACH) != 0) child::fail(out, kDetach, errno);
  if (chdir("/") != 0) child::fail(out, kChdir, errno);
  if (sethostname("sandbox", 7) != 0) child::fail(out, kHostname, errno);
  if (a->loopback) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, "lo", 3);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) child::fail(out, kLoopback, errno);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) child::fail(out, kLoopback, errno);
    close(s);
  }
  prctl(PR_SET_DUMPABLE, 0);
  if (child::drop_capabilities() != 0) child::fail(out, kCaps, errno);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

  // Reap forever: block SIGCHLD and take it synchronously, so no wake-up is lost.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_SETMASK, &chld, nullptr);
  child::StatusRecord ok;
  ok.kind = child::kResult;
  child::write_all(out, &ok, sizeof(ok));
  close(out);
  close(in);
  while (true) {
    while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
    }
    siginfo_t info;
    sigwaitinfo(&chld, &info);
  }
}

Status write_proc(pid_t pid, const char* file, const std::string& text) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return io_error("open " + path + ": " + std::strerror(errno));
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return io_error("write " + path + ": " + std::strerror(err));
  return Status::ok();
}

}  // namespace

Expected<std::unique_ptr<InitProcess>> InitProcess::start(const InitConfig& config) {
  ChildArgs a;
  a.merged = config.merged.c_str();
  for (const auto& b : config.binds) {
    a.bind_src.push_back(b.path);
    a.bind_dst.push_back(config.merged + b.path);
    a.bind_flags.push_back(b.flags);
  }
  a.proc = config.merged + "/proc";
  a.proc_sys = a.proc + "/sys";
  a.dev = config.merged + "/dev";
  a.pts = a.dev + "/pts";
  a.shm = a.dev + "/shm";
  for (const char* node : {"null", "zero", "full", "random", "urandom", "tty"}) {
    if (::access((std::string("/dev/") + node).c_str(), F_OK) != 0) continue;  // e.g. no /dev/tty
    a.dev_src.push_back(std::string("/dev/") + node);
    a.dev_dst.push_back(a.dev + "/" + node);
  }
  const std::pair<const char*, const char*> links[] = {
      {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}};
  for (const auto& [target, name] : links) {
    a.link_target.push_back(target);
    a.link_path.push_back(a.dev + "/" + name);
  }
  a.loopback = config.network == NetworkMode::kLoopback;

  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) return io_error(std::string("pipe: ") + std::strerror(errno));
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    return io_error(std::string("pipe: ") + std::strerror(errno));
  }
  a.sync_in = to_child[0];
  a.sync_out = from_child[1];

  constexpr size_t kStack = 256 * 1024;
  std::vector<char> stack(kStack);
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  pid_t pid = clone(child_main, stack.data() + kStack, flags, &a);
  int clone_err = errno;
  ::close(to_child[0]);
  ::close(from_child[1]);
  auto init = std::make_unique<InitProcess>();
  if (pid < 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    return io_error(std::string("clone(new namespaces): ") + std::strerror(clone_err));
  }
  init->pid_ = pid;
  init->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));

  Status status;
  for (const auto& file : config.cgroup_procs) {
    std::ofstream f(file);
    f << pid;
    f.flush();
    if (!f) {
      status = io_error("cannot move sandbox init into " + file);
      break;
    }
  }
  std::string map = "0 " + std::to_string(config.uid_base) + " " + std::to_string(config.id_count) + "\n";
  std::string gmap = "0 " + std::to_string(config.gid_base) + " " + std::to_string(config.id_count) + "\n";
  if (status.is_ok()) status = write_proc(pid, "uid_map", map);
  if (status.is_ok()) status = write_proc(pid, "gid_map", gmap);
  if (status.is_ok()) {
    char go = 'g';
    if (::write(to_child[1], &go, 1) != 1) status = io_error("cannot signal sandbox init");
  }
  ::close(to_child[1]);
  if (status.is_ok()) {
    child::StatusRecord r;
    pollfd p{from_child[0], POLLIN, 0};
    int ready = poll(&p, 1, 10000);
    ssize_t n = ready > 0 ? ::read(from_child[0], &r, sizeof(r)) : -1;
    if (n != static_cast<ssize_t>(sizeof(r))) {
      status = internal_error(ready == 0 ? "sandbox init did not start within 10 s" : "sandbox init died during setup");
    } else if (r.kind == child::kSetupError) {
      const char* step = r.step >= 0 && r.step < static_cast<int>(std::size(kSteps)) ? kSteps[r.step] : "?";
      status = internal_error(std::string("sandbox init failed at '") + step + "': " + std::strerror(r.err));
    }
  }
  ::close(from_child[0]);
  if (status.is_ok()) {
    const char* names[kNsCount] = {"ipc", "uts", "net", "cgroup", "pid", "mnt", "user"};
    for (int i = 0; i < kNsCount && status.is_ok(); ++i) {
      std::string path = "/proc/" + std::to_string(pid) + "/ns/" + names[i];
      init->ns_[i] = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (init->ns_[i] < 0) status = io_error("open " + path + ": " + std::strerror(errno));
    }
  }
  if (!status.is_ok()) {
    init->kill();
    return status;
  }
  return init;
}

InitProcess::~InitProcess() { kill(); }

void InitProcess::kill() {
  for (int& fd : ns_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  if (pid_ > 0) {
    if (pidfd_ >= 0) syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0);
    else ::kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, __WALL) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

}  // namespace tidal::sandbox
