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
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "tidal/sandbox/child_setup.h"
#include "tidal/sandbox/exec_tree.h"

namespace tidal::sandbox {

namespace {

// Steps of the init's setup, for error messages (index = StatusRecord::step).
const char* const kSteps[] = {
    "arrange fds", "wait for id maps", "setresuid/setresgid", "unshare cgroup namespace",
    "make mounts private", "bind host directory", "remount bind read-only", "mount /proc",
    "remount /proc/sys read-only", "mount /dev tmpfs", "create /dev node", "bind /dev node",
    "mount /dev/pts", "mount /dev/shm", "create /dev symlink", "pivot_root", "detach old root",
    "sethostname", "bring up loopback", "signalfd", "chdir /", "bind root onto itself"};
enum Step {
  kArrange, kWaitMaps, kSetIds, kCgroupNs, kPrivate, kBind, kBindRo, kProc, kProcSys, kDevTmpfs,
  kDevNode, kDevBind, kDevPts, kDevShm, kDevLink, kPivot, kDetach, kHostname, kLoopback, kSignalfd, kChdir, kRootBind
};

// Everything the child needs, as C strings prepared by the parent (the child must not allocate).
struct ChildArgs {
  int sync_in = -1, sync_out = -1;  // parent -> child "go", child -> parent status
  int ctl = -1;                     // the init's end of the spawn socketpair
  const SeccompFilter* filter = nullptr;
  std::vector<char> message;        // receive buffer (exec_tree::kMaxMessageBytes)
  std::vector<char*> slots;         // decode slots (exec_tree::kMaxStrings + 3)
  const char* merged = nullptr;
  std::vector<std::string> bind_src, bind_dst;
  std::vector<unsigned long> bind_flags;
  std::string proc, proc_sys, dev, pts, shm, ptmx;
  std::vector<std::string> dev_src, dev_dst;
  std::vector<std::string> link_target, link_path;
  bool loopback = false;
};

[[noreturn]] TIDAL_CHILD_CODE void serve(ChildArgs& a, int ctl, int sfd);

TIDAL_CHILD_CODE int child_main(void* arg) {
  auto* a = static_cast<ChildArgs*>(arg);
  int fds[3] = {a->sync_in, a->sync_out, a->ctl};
  if (!child::arrange_fds(fds, 3)) _exit(126);
  const int in = 0, out = 1, ctl = 2;
  prctl(PR_SET_NAME, "tidal-init");
  char go;
  if (read(in, &go, 1) != 1) child::fail(out, kWaitMaps, errno);
  if (int rc = child::become_root(); rc != 0) child::fail(out, kSetIds, -rc);
  // After become_root(): a credential change clears the parent-death signal. (Should the daemon
  // die before this line, the init still exits: its control socket reads EOF.)
  prctl(PR_SET_PDEATHSIG, SIGKILL);
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
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_SETMASK, &chld, nullptr);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) child::fail(out, kSignalfd, errno);
  child::StatusRecord ok;
  ok.kind = child::kResult;
  child::write_all(out, &ok, sizeof(ok));
  close(out);
  close(in);
  serve(*a, ctl, sfd);
}

// The init's loop: reap children, fork exec trees on request. Exits when the daemon's end closes.
[[noreturn]] TIDAL_CHILD_CODE void serve(ChildArgs& a, int ctl, int sfd) {
  while (true) {
    pollfd p[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) continue;
    if (p[1].revents & POLLIN) {
      signalfd_siginfo info[8];
      while (read(sfd, info, sizeof(info)) > 0) {
      }
      while (waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
      }
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    iovec iov{a.message.data(), a.message.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * exec_tree::kNumFds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0);  // the daemon is gone (or closed us): the sandbox ends with us
    int fds[exec_tree::kNumFds] = {-1, -1, -1, -1};
    int n_fds = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          if (n_fds < exec_tree::kNumFds) fds[n_fds++] = fd;
          else close(fd);
        }
      }
    }
    int32_t err = 0;
    exec_tree::Command command;
    command.filter = a.filter;
    pid_t pid = -1;
    if (n_fds != exec_tree::kNumFds || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
        !exec_tree::decode_message(a.message.data(), static_cast<size_t>(n), a.slots.data(), &command)) {
      err = EINVAL;
    } else {
      pid = child::raw_fork();
      if (pid == 0) {
        close(ctl);
        close(sfd);
        if (!child::arrange_fds(fds, exec_tree::kNumFds)) _exit(126);
        exec_tree::run(command);
      }
      if (pid < 0) err = errno;
    }
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
    int pidfd = pid > 0 ? static_cast<int>(syscall(SYS_pidfd_open, pid, 0)) : -1;
    if (pid > 0 && pidfd < 0) err = errno;
    iovec reply_iov{&err, sizeof(err)};
    msghdr reply{};
    reply.msg_iov = &reply_iov;
    reply.msg_iovlen = 1;
    alignas(cmsghdr) char reply_control[CMSG_SPACE(sizeof(int))];
    if (pidfd >= 0) {
      reply.msg_control = reply_control;
      reply.msg_controllen = sizeof(reply_control);
      cmsghdr* c = CMSG_FIRSTHDR(&reply);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &pidfd, sizeof(int));
    }
    sendmsg(ctl, &reply, MSG_NOSIGNAL);
    if (pidfd >= 0) close(pidfd);
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
  a.loopback = config.network != NetworkMode::kNone;  // egress: lo too (eth0 is added by Egress)
  a.filter = config.filter;
  a.message.resize(exec_tree::kMaxMessageBytes);
  a.slots.resize(exec_tree::kMaxStrings + 3);
  int ctl[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) != 0) {
    return io_error(std::string("socketpair: ") + std::strerror(errno));
  }
  a.ctl = ctl[1];
  int sndbuf = static_cast<int>(exec_tree::kMaxMessageBytes * 2);
  setsockopt(ctl[0], SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
  setsockopt(ctl[1], SOL_SOCKET, SO_RCVBUFFORCE, &sndbuf, sizeof(sndbuf));

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
  ::close(ctl[1]);
  auto init = std::make_unique<InitProcess>();
  init->ctl_ = ctl[0];
  if (pid < 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    return io_error(std::string("clone(new namespaces): ") + std::strerror(clone_err));
  }
  init->pid_ = pid;
  init->uid_base_ = config.uid_base;
  init->gid_base_ = config.gid_base;
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
  // The cgroup's OOM killer must pick the hog, never the init (whose death ends the sandbox).
  // Lowering the score needs CAP_SYS_RESOURCE, which containers often lack: best effort. Execs
  // raise theirs to 500 (exec_tree::run), so they are the victims either way.
  if (status.is_ok()) (void)write_proc(pid, "oom_score_adj", "-1000");
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
      std::string where;
      if (ready == 0) {  // say where it is stuck: the kernel function it sleeps in, and its syscall
        std::ifstream wchan("/proc/" + std::to_string(pid) + "/wchan"), sc("/proc/" + std::to_string(pid) + "/syscall");
        std::string w, c;
        std::getline(wchan, w);
        std::getline(sc, c);
        where = " (blocked in " + w + ", syscall " + c.substr(0, c.find(' ')) + ")";
      }
      status = internal_error(ready == 0 ? "sandbox init did not start within 10 s" + where : "sandbox init died during setup");
    } else if (r.kind == child::kSetupError) {
      const char* step = r.step >= 0 && r.step < static_cast<int>(std::size(kSteps)) ? kSteps[r.step] : "?";
      status = internal_error(std::string("sandbox init failed at '") + step + "': " + std::strerror(r.err));
    }
  }
  ::close(from_child[0]);
  if (!status.is_ok()) {
    init->kill();
    return status;
  }
  return init;
}

namespace {

const char* const kSwapSteps[] = {"setns", "mkdir staging dir", "attach new root", "move mount", "open /dev",
                                  "chdir new root", "pivot_root", "move /dev", "remove staging dir", "detach old root"};

struct SwapArgs {
  int ns = -1, root = -1, status = -1;
  uint32_t uid = 0, gid = 0;
  const char* stage = nullptr;      // "/dev/.tidal-root"
  const char* stage_name = nullptr;  // ".tidal-root"
  std::vector<const char*> from, to;
};

[[noreturn]] TIDAL_CHILD_CODE void swap_child(const SwapArgs& a);

TIDAL_CHILD_CODE int swap_child_entry(void* arg) { swap_child(*static_cast<const SwapArgs*>(arg)); }

[[noreturn]] TIDAL_CHILD_CODE void swap_child(const SwapArgs& a) {
  if (syscall(SYS_setns, a.ns, CLONE_NEWNS) != 0) child::fail(a.status, 0, errno);
  if (chdir("/") != 0) child::fail(a.status, 0, errno);
  // The sandbox's /dev belongs to its user namespace, where host root has no uid: create the
  // staging directory as the sandbox's root (the mount calls need CAP_SYS_ADMIN, which stays).
  syscall(SYS_setfsgid, a.gid);
  syscall(SYS_setfsuid, a.uid);
  if (mkdir(a.stage, 0700) != 0) child::fail(a.status, 1, errno);
  if (syscall(SYS_move_mount, a.root, "", AT_FDCWD, a.stage, MOVE_MOUNT_F_EMPTY_PATH) != 0) child::fail(a.status, 2, errno);
  for (size_t i = 0; i < a.from.size(); ++i) {
    if (mount(a.from[i], a.to[i], nullptr, MS_MOVE, nullptr) != 0) child::fail(a.status, 3, errno);
  }
  int dev = open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dev < 0) child::fail(a.status, 4, errno);
  if (fchdir(a.root) != 0) child::fail(a.status, 5, errno);
  // The new root leaves /dev/.tidal-root and becomes "/" of every process of the namespace whose
  // root was the old one (the init); the old root ends up stacked on top of it.
  if (syscall(SYS_pivot_root, ".", ".") != 0) child::fail(a.status, 6, errno);
  if (syscall(SYS_move_mount, dev, "", a.root, "dev", MOVE_MOUNT_F_EMPTY_PATH) != 0) child::fail(a.status, 7, errno);
  if (unlinkat(dev, a.stage_name, AT_REMOVEDIR) != 0) child::fail(a.status, 8, errno);
  if (umount2(".", MNT_DETACH) != 0) child::fail(a.status, 9, errno);
  child::StatusRecord ok;
  ok.kind = child::kResult;
  child::write_all(a.status, &ok, sizeof(ok));
  _exit(0);
}

}  // namespace

Status InitProcess::replace_root(int new_root, const std::vector<std::string>& bind_paths) {
  if (pid_ <= 0) return not_found("sandbox was destroyed");
  std::vector<std::string> from, to;
  for (const auto& b : bind_paths) {
    from.push_back(b);
    to.push_back("/dev/.tidal-root" + b);
  }
  from.push_back("/proc");
  to.push_back("/dev/.tidal-root/proc");
  SwapArgs a;
  a.root = new_root;
  a.uid = uid_base_;
  a.gid = gid_base_;
  a.stage = "/dev/.tidal-root";
  a.stage_name = ".tidal-root";
  for (size_t i = 0; i < from.size(); ++i) {
    a.from.push_back(from[i].c_str());
    a.to.push_back(to[i].c_str());
  }
  std::string ns_path = "/proc/" + std::to_string(pid_) + "/ns/mnt";
  a.ns = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (a.ns < 0) return internal_error("open " + ns_path + ": " + std::strerror(errno));
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    ::close(a.ns);
    return io_error(std::string("pipe: ") + std::strerror(errno));
  }
  a.status = status_pipe[1];
  // CLONE_VM | CLONE_VFORK: no copy of the daemon's page tables (a plain fork of a daemon with
  // many threads and mappings costs milliseconds); the helper only makes syscalls on its own stack
  // and this thread sleeps until it exits.
  constexpr size_t kStack = 64 * 1024;
  std::vector<char> stack(kStack);
  pid_t pid = clone(swap_child_entry, stack.data() + kStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int fork_err = errno;
  ::close(status_pipe[1]);
  ::close(a.ns);
  if (pid < 0) {
    ::close(status_pipe[0]);
    return io_error(std::string("fork: ") + std::strerror(fork_err));
  }
  child::StatusRecord r;
  ssize_t n;
  do {
    n = ::read(status_pipe[0], &r, sizeof(r));
  } while (n < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof(r))) return internal_error("root swap helper died");
  if (r.kind == child::kSetupError) {
    const char* step = r.step >= 0 && r.step < static_cast<int>(std::size(kSwapSteps)) ? kSwapSteps[r.step] : "?";
    return internal_error(std::string("root swap failed at '") + step + "': " + std::strerror(r.err));
  }
  return Status::ok();
}

InitProcess::~InitProcess() { kill(); }

Expected<int> InitProcess::spawn(const std::string& message, const int fds[4]) {
  std::lock_guard<std::mutex> lock(ctl_mu_);
  if (ctl_ < 0) return not_found("sandbox was destroyed");
  iovec iov{const_cast<char*>(message.data()), message.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * exec_tree::kNumFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * exec_tree::kNumFds);
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * exec_tree::kNumFds);
  if (sendmsg(ctl_, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(message.size())) {
    return internal_error(std::string("cannot reach the sandbox init: ") + std::strerror(errno));
  }
  pollfd p{ctl_, POLLIN, 0};
  if (poll(&p, 1, 10000) <= 0) return internal_error("the sandbox init did not answer within 10 s");
  int32_t err = 0;
  iovec reply_iov{&err, sizeof(err)};
  alignas(cmsghdr) char reply_control[CMSG_SPACE(sizeof(int))];
  msghdr reply{};
  reply.msg_iov = &reply_iov;
  reply.msg_iovlen = 1;
  reply.msg_control = reply_control;
  reply.msg_controllen = sizeof(reply_control);
  ssize_t n = recvmsg(ctl_, &reply, MSG_CMSG_CLOEXEC);
  if (n != sizeof(err)) return internal_error("the sandbox init closed its socket");
  int pidfd = -1;
  for (cmsghdr* rc = CMSG_FIRSTHDR(&reply); rc; rc = CMSG_NXTHDR(&reply, rc)) {
    if (rc->cmsg_level == SOL_SOCKET && rc->cmsg_type == SCM_RIGHTS) std::memcpy(&pidfd, CMSG_DATA(rc), sizeof(int));
  }
  if (err != 0 || pidfd < 0) {
    if (pidfd >= 0) ::close(pidfd);
    std::string msg = std::string("the sandbox init could not fork: ") + std::strerror(err ? err : EIO);
    if (err == EAGAIN || err == ENOMEM) return resource_exhausted(msg + " (pids or memory limit reached)");
    return internal_error(msg);
  }
  return pidfd;
}

void InitProcess::kill() {
  {
    std::lock_guard<std::mutex> lock(ctl_mu_);
    if (ctl_ >= 0) ::close(ctl_);
    ctl_ = -1;
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
