// `tidal serve` child processes for tests (tests/rollout, tests/rl): start on a model, read the
// port from the log, SIGKILL, read /metrics. Needs TIDAL_BIN (the CLI binary's path).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tidal/http/http_client.h"

extern char** environ;

namespace tidal::test {

// The engine settings shared by the servers and the in-process reference engine.
constexpr int kThreads = 1;
constexpr const char* kKvMemory = "32MiB";
constexpr uint64_t kKvBytes = 32ull << 20;

// One `tidal serve` child process; its stderr goes to a log file, from which the port is read.
struct Server {
  pid_t pid = -1;
  uint16_t port = 0;
  std::string url, log;

  // Logs go to `log_dir`.
  static Server start(const std::string& model, const std::filesystem::path& log_dir, uint16_t port = 0) {
    static int counter = 0;
    Server s;
    s.log = (log_dir / ("serve" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".log")).string();
    const std::string port_s = std::to_string(port);
    std::vector<std::string> args = {TIDAL_BIN, "serve", "--model", model, "--port", port_s, "--threads",
                                     std::to_string(kThreads), "--kv-cache-memory", kKvMemory,
                                     "--http-workers", "64", "--shutdown-grace-s", "1"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, s.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&s.pid, TIDAL_BIN, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    EXPECT_EQ(rc, 0) << "cannot start " << TIDAL_BIN;
    // "[tidal serve] listening on http://127.0.0.1:PORT"
    const std::string key = "listening on http://127.0.0.1:";
    for (int i = 0; i < 3000 && s.port == 0; ++i) {
      std::ifstream f(s.log);
      std::stringstream ss;
      ss << f.rdbuf();
      const std::string text = ss.str();
      if (auto at = text.find(key); at != std::string::npos && text.find('\n', at) != std::string::npos) {
        s.port = uint16_t(std::stoi(text.substr(at + key.size())));
      } else {
        int status = 0;
        if (::waitpid(s.pid, &status, WNOHANG) == s.pid) {
          ADD_FAILURE() << "tidal serve exited: " << text;
          s.pid = -1;
          return s;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    EXPECT_NE(s.port, 0) << "tidal serve did not report its port";
    s.url = "http://127.0.0.1:" + std::to_string(s.port);
    return s;
  }
  void kill() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
  // A value the server reports in /metrics (-1 when missing).
  int64_t metric(const std::string& name) const {
    http::HttpClient c("127.0.0.1", port);
    auto r = c.request("GET", "/metrics");
    if (!r || r->status != 200) return -1;
    const std::string key = "\n" + name + " ";
    const size_t at = r->body.find(key);
    return at == std::string::npos ? -1 : int64_t(std::stod(r->body.substr(at + key.size())));
  }
  int64_t version() const { return metric("tidal_weight_version"); }
  int post(const std::string& path, const std::string& body) const {
    http::HttpClient c("127.0.0.1", port);
    auto r = c.request("POST", path, body);
    return r ? r->status : -1;
  }
};

}  // namespace tidal::test
