#include "tidal/sandbox/exec_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>

#include "tidal/sandbox/child_setup.h"
#include "tidal/sandbox/seccomp_filter.h"
#include "tidal/sandbox/spawn_thread.h"

namespace tidal::sandbox {

namespace {

const char* const kSteps[] = {"arrange fds", "join cgroup", "setns", "setgroups/setresuid",
                              "pipe", "fork", "unshare pid namespace", "chdir", "drop capabilities",
                              "no_new_privs", "seccomp", "execve", "mount /proc"};
enum Step { kArrange, kCgroup, kSetns, kSetIds, kPipe, kFork, kUnsharePid, kChdir, kCaps, kNoNewPrivs, kSeccomp, kExec, kProc };

// Descriptor layout in the helpers after arrange_fds().
constexpr int kStdin = 0, kStdout = 1, kStderr = 2, kStatus = 3, kFirstNs = 4;

struct ChildArgs {
  int fds[kFirstNs + kNsCount];
  std::vector<std::string> cgroup_procs;
  std::vector<std::string> candidates;  // full paths to try for argv[0]
  std::vector<char*> argv, envp;
  std::string cwd;
  const SeccompFilter* filter;
};

[[noreturn]] void run_command(const ChildArgs& a) {
  setsid();
  child::reset_signals();
  if (chdir(a.cwd.c_str()) != 0) child::fail(kStatus, kChdir, errno);
  if (child::drop_capabilities() != 0) child::fail(kStatus, kCaps, errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child::fail(kStatus, kNoNewPrivs, errno);
  if (a.filter) {
    int rc = a.filter->install();
    if (rc != 0) child::fail(kStatus, kSeccomp, -rc);
  }
  fcntl(kStatus, F_SETFD, FD_CLOEXEC);  // closed by a successful execve; open to report a failure
  int err = ENOENT;
  for (const auto& path : a.candidates) {
    execve(path.c_str(), a.argv.data(), a.envp.data());
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
    if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) break;
  }
  child::fail(kStatus, kExec, err);
}

// pid 1 of the per-exec pid namespace.
[[noreturn]] void run_reaper(const ChildArgs& a, int life_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (child::parent_gone(life_fd)) _exit(1);
  ::close(life_fd);
  // A /proc of this exec's pid namespace (in this exec's mount namespace), so that ps, pgrep and
  // /proc/self agree with getpid(). /proc/sys stays read-only.
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0 ||
      mount("/proc/sys", "/proc/sys", nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
      mount(nullptr, "/proc/sys", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            nullptr) != 0) {
    child::fail(kStatus, kProc, errno);
  }
  pid_t cmd = fork();
  if (cmd < 0) child::fail(kStatus, kFork, errno);
  if (cmd == 0) run_command(a);
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
  rec.kind = child::kResult;
  rec.wait_status = wait_status;
  rec.cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
  child::write_all(kStatus, &rec, sizeof(rec));
  _exit(0);  // the kernel kills the rest of this pid namespace
}

// Inside the sandbox's pid namespace.
[[noreturn]] void run_h2(const ChildArgs& a, int life_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (child::parent_gone(life_fd)) _exit(1);
  ::close(life_fd);
  if (unshare(CLONE_NEWPID | CLONE_NEWNS) != 0) child::fail(kStatus, kUnsharePid, errno);
  int life[2];
  if (pipe2(life, O_CLOEXEC) != 0) child::fail(kStatus, kPipe, errno);
  pid_t reaper = fork();
  if (reaper < 0) child::fail(kStatus, kFork, errno);
  if (reaper == 0) {
    ::close(life[1]);
    run_reaper(a, life[0]);
  }
  ::close(life[0]);
  for (int fd = 0; fd <= kStatus; ++fd) ::close(fd);
  while (waitpid(reaper, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  _exit(0);
}

// Forked from the daemon (on the SpawnThread).
[[noreturn]] void run_h1(ChildArgs& a) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, "tidal-exec");
  if (!child::arrange_fds(a.fds, kFirstNs + kNsCount)) _exit(126);
  for (const auto& file : a.cgroup_procs) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) child::fail(kStatus, kCgroup, errno);
    close(fd);
  }
  for (int i = 0; i < kNsCount; ++i) {
    if (setns(kFirstNs + i, 0) != 0) child::fail(kStatus, kSetns, errno);
    close(kFirstNs + i);
  }
  if (setgroups(0, nullptr) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) {
    child::fail(kStatus, kSetIds, errno);
  }
  int life[2];
  if (pipe2(life, O_CLOEXEC) != 0) child::fail(kStatus, kPipe, errno);
  pid_t h2 = fork();
  if (h2 < 0) child::fail(kStatus, kFork, errno);
  if (h2 == 0) {
    ::close(life[1]);
    run_h2(a, life[0]);
  }
  ::close(life[0]);
  for (int fd = 0; fd <= kStatus; ++fd) ::close(fd);
  while (waitpid(h2, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  _exit(0);
}

struct Pipe {
  int r = -1, w = -1;
  bool open() {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return false;
    r = p[0], w = p[1];
    return true;
  }
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ~Pipe() {
    close_fd(r);
    close_fd(w);
  }
};

int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Expected<ExecResult> ExecRunner::run(SpawnThread& spawner, const ExecTarget& target,
                                     const ExecRequest& request, const OutputFn& on_output) {
  if (request.argv.empty()) return invalid_argument("empty command");
  // Environment: defaults < sandbox env < request env.
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", "/root"}, {"LANG", "C.UTF-8"}, {"TERM", "dumb"}, {"USER", "root"}, {"HOSTNAME", "sandbox"}};
  for (const auto& [k, v] : target.env) env[k] = v;
  for (const auto& [k, v] : request.env) env[k] = v;

  ChildArgs a;
  a.cgroup_procs = target.cgroup_procs;
  a.cwd = request.cwd.empty() ? "/" : request.cwd;
  a.filter = target.filter;
  std::vector<std::string> argv_storage = request.argv, env_storage;
  for (auto& s : argv_storage) a.argv.push_back(s.data());
  a.argv.push_back(nullptr);
  for (const auto& [k, v] : env) env_storage.push_back(k + "=" + v);
  for (auto& s : env_storage) a.envp.push_back(s.data());
  a.envp.push_back(nullptr);
  const std::string& cmd = request.argv[0];
  if (cmd.find('/') != std::string::npos) {
    a.candidates.push_back(cmd);
  } else {
    const std::string& path = env["PATH"];
    size_t pos = 0;
    while (pos <= path.size()) {
      size_t colon = path.find(':', pos);
      if (colon == std::string::npos) colon = path.size();
      std::string dir = path.substr(pos, colon - pos);
      a.candidates.push_back((dir.empty() ? "." : dir) + "/" + cmd);
      pos = colon + 1;
    }
  }

  Pipe in, out, err, status;
  if (!in.open() || !out.open() || !err.open() || !status.open()) {
    return internal_error(std::string("pipe: ") + std::strerror(errno));
  }
  a.fds[kStdin] = in.r;
  a.fds[kStdout] = out.w;
  a.fds[kStderr] = err.w;
  a.fds[kStatus] = status.w;
  for (int i = 0; i < kNsCount; ++i) a.fds[kFirstNs + i] = target.ns_fds[i];

  auto t0 = std::chrono::steady_clock::now();
  pid_t h1 = spawner.run([&a]() -> pid_t {
    pid_t pid = fork();
    if (pid == 0) run_h1(a);
    return pid;
  });
  if (h1 < 0) return internal_error(std::string("fork: ") + std::strerror(errno));
  Pipe::close_fd(in.r);
  Pipe::close_fd(out.w);
  Pipe::close_fd(err.w);
  Pipe::close_fd(status.w);
  fcntl(in.w, F_SETFL, O_NONBLOCK);
  if (request.stdin_data.empty()) Pipe::close_fd(in.w);

  ExecResult result;
  size_t stdin_off = 0;
  std::string status_bytes;
  auto deadline = t0 + std::chrono::milliseconds(request.timeout_ms);
  std::chrono::steady_clock::time_point drain_deadline{};  // set once the command finished or was killed
  bool killed = false;
  char buf[65536];
  while (out.r >= 0 || err.r >= 0 || status.r >= 0) {
    auto now = std::chrono::steady_clock::now();
    if (!killed && now >= deadline) {
      result.timed_out = true;
      killed = true;
      ::kill(h1, SIGKILL);  // PDEATHSIG cascades: H2, then the exec's pid namespace
      drain_deadline = now + std::chrono::seconds(2);
    }
    if (drain_deadline.time_since_epoch().count() != 0 && now >= drain_deadline) break;
    pollfd fds[4];
    int n = 0;
    int idx_out = -1, idx_err = -1, idx_status = -1, idx_in = -1;
    if (out.r >= 0) idx_out = n, fds[n++] = {out.r, POLLIN, 0};
    if (err.r >= 0) idx_err = n, fds[n++] = {err.r, POLLIN, 0};
    if (status.r >= 0) idx_status = n, fds[n++] = {status.r, POLLIN, 0};
    if (in.w >= 0) idx_in = n, fds[n++] = {in.w, POLLOUT, 0};
    auto until = drain_deadline.time_since_epoch().count() != 0 ? drain_deadline : deadline;
    if (killed) until = drain_deadline;
    int wait_ms = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1));
    int ready = poll(fds, static_cast<nfds_t>(n), wait_ms);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    auto drain = [&](int idx, int& fd, std::string& sink, int stream) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t r = ::read(fd, buf, sizeof(buf));
      if (r <= 0) {
        if (r < 0 && errno == EINTR) return;
        Pipe::close_fd(fd);
        return;
      }
      size_t room = sink.size() < static_cast<size_t>(request.max_output_bytes)
                        ? static_cast<size_t>(request.max_output_bytes) - sink.size() : 0;
      size_t keep = std::min(room, static_cast<size_t>(r));
      if (keep < static_cast<size_t>(r)) result.truncated = true;
      sink.append(buf, keep);
      if (on_output && keep > 0) on_output(stream, std::string_view(buf, keep));
    };
    drain(idx_out, out.r, result.stdout_data, 1);
    drain(idx_err, err.r, result.stderr_data, 2);
    if (idx_status >= 0 && (fds[idx_status].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t r = ::read(status.r, buf, sizeof(buf));
      if (r > 0) {
        status_bytes.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        Pipe::close_fd(status.r);
        // The reaper is gone: leftovers are being killed; give the pipes a moment to drain.
        if (drain_deadline.time_since_epoch().count() == 0) {
          drain_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        }
      }
    }
    if (idx_in >= 0 && (fds[idx_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in.w, request.stdin_data.data() + stdin_off, request.stdin_data.size() - stdin_off);
      if (w > 0) stdin_off += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || stdin_off >= request.stdin_data.size()) {
        Pipe::close_fd(in.w);
      }
    }
  }
  if (!killed && (out.r >= 0 || err.r >= 0)) ::kill(h1, SIGKILL);  // output held open past the drain time
  while (waitpid(h1, nullptr, __WALL) < 0 && errno == EINTR) {
  }
  result.wall_ms = ms_since(t0);

  // Records: an optional setup error (from any helper or the command before execve), then M's result.
  bool have_result = false;
  for (size_t off = 0; off + sizeof(child::StatusRecord) <= status_bytes.size(); off += sizeof(child::StatusRecord)) {
    child::StatusRecord rec;
    std::memcpy(&rec, status_bytes.data() + off, sizeof(rec));
    if (rec.kind == child::kSetupError) {
      const char* step = rec.step >= 0 && rec.step < static_cast<int>(std::size(kSteps)) ? kSteps[rec.step] : "?";
      std::string msg = std::string("tidal-sandbox: ") + step + " failed";
      if (rec.step == kExec) msg += " for '" + cmd + "'";
      if (rec.step == kChdir) msg += " for '" + a.cwd + "'";
      msg += ": " + std::string(std::strerror(rec.err)) + "\n";
      result.stderr_data += msg;
      result.exit_code = 127;
      have_result = true;
    } else if (rec.kind == child::kResult) {
      result.cpu_ms = rec.cpu_us / 1000;
      if (result.exit_code == 127 && have_result) continue;  // keep the setup error's 127
      if (WIFEXITED(rec.wait_status)) {
        result.exit_code = WEXITSTATUS(rec.wait_status);
        result.signal = 0;
      } else if (WIFSIGNALED(rec.wait_status)) {
        result.exit_code = -1;
        result.signal = WTERMSIG(rec.wait_status);
      }
      have_result = true;
    }
  }
  if (!have_result) {  // killed (timeout, sandbox destroyed) before the reaper reported
    result.exit_code = -1;
    result.signal = SIGKILL;
  }
  return result;
}

}  // namespace tidal::sandbox
