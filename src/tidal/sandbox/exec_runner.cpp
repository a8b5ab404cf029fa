#include "tidal/sandbox/exec_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>

#include "tidal/sandbox/child_setup.h"
#include "tidal/sandbox/exec_tree.h"

namespace tidal::sandbox {

namespace {

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

Expected<ExecResult> ExecRunner::run(const SpawnFn& spawn, const std::map<std::string, std::string>& sandbox_env,
                                     const ExecRequest& request, const OutputFn& on_output) {
  if (request.argv.empty()) return invalid_argument("empty command");
  // Environment: defaults < sandbox env < request env.
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", "/root"}, {"LANG", "C.UTF-8"}, {"TERM", "dumb"}, {"USER", "root"}, {"HOSTNAME", "sandbox"}};
  for (const auto& [k, v] : sandbox_env) env[k] = v;
  for (const auto& [k, v] : request.env) env[k] = v;
  std::vector<std::string> env_list, candidates;
  for (const auto& [k, v] : env) {
    if (k.empty() || k.find('=') != std::string::npos) return invalid_argument("bad environment variable name '" + k + "'");
    env_list.push_back(k + "=" + v);
  }
  const std::string& cmd = request.argv[0];
  if (cmd.empty()) return invalid_argument("empty command name");
  if (cmd.find('/') != std::string::npos) {
    candidates.push_back(cmd);
  } else {
    const std::string& path = env["PATH"];
    size_t pos = 0;
    while (pos <= path.size()) {
      size_t colon = path.find(':', pos);
      if (colon == std::string::npos) colon = path.size();
      std::string dir = path.substr(pos, colon - pos);
      candidates.push_back((dir.empty() ? "." : dir) + "/" + cmd);
      pos = colon + 1;
    }
  }
  std::string cwd = request.cwd.empty() ? "/" : request.cwd;
  TIDAL_ASSIGN_OR_RETURN(std::string message, exec_tree::encode_message(request.argv, env_list, cwd, candidates));

  Pipe in, out, err, status;
  if (!in.open() || !out.open() || !err.open() || !status.open()) {
    return internal_error(std::string("pipe: ") + std::strerror(errno));
  }
  int fds[exec_tree::kNumFds] = {in.r, out.w, err.w, status.w};
  auto t0 = std::chrono::steady_clock::now();
  TIDAL_ASSIGN_OR_RETURN(int tree, spawn(message, fds));
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
      syscall(SYS_pidfd_send_signal, tree, SIGKILL, nullptr, 0);  // PDEATHSIG cascades through the tree
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
  if (!killed && (out.r >= 0 || err.r >= 0)) syscall(SYS_pidfd_send_signal, tree, SIGKILL, nullptr, 0);
  ::close(tree);  // the init reaps the tree
  result.wall_ms = ms_since(t0);

  // Records: an optional setup error (from any helper or the command before execve), then M's result.
  bool have_result = false;
  for (size_t off = 0; off + sizeof(child::StatusRecord) <= status_bytes.size(); off += sizeof(child::StatusRecord)) {
    child::StatusRecord rec;
    std::memcpy(&rec, status_bytes.data() + off, sizeof(rec));
    if (rec.kind == child::kSetupError) {
      const char* step = rec.step >= 0 && rec.step < exec_tree::kNumSteps ? exec_tree::kStepNames[rec.step] : "?";
      std::string msg = std::string("tidal-sandbox: ") + step + " failed";
      if (rec.step == exec_tree::kExec) msg += " for '" + cmd + "'";
      if (rec.step == exec_tree::kChdir) msg += " for '" + cwd + "'";
      msg += ": " + std::string(std::strerror(rec.err)) + "\n";
      result.stderr_data += msg;
      result.exit_code = 127;
      have_result = true;
    } else if (rec.kind == child::kResult) {
      result.cpu_ms = rec.cpu_us / 1000;
      result.leftover_processes = rec.leftovers;
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
