// A sandbox service on loopback for integration tests: a SandboxManager with its own root under
// /tmp, the HTTP server on a free port, and a client. Skips (not fails) when not run as root.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tidal/http/http_client.h"
#include "tidal/http/http_server.h"
#include "tidal/sandbox/sandbox_api.h"
#include "tidal/sandbox/sandbox_manager.h"

namespace tidal::sandbox::testing {

using nlohmann::json;

class SandboxService : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    ManagerOptions mopts;
    mopts.root = "/tmp/tidal-sandbox-test-" + std::to_string(getpid());
    mopts.max_sandboxes = max_sandboxes_;
    mopts.max_execs = max_execs_;
    // Per test process, so that parallel test binaries never share egress addresses.
    mopts.egress_subnet = "10." + std::to_string(200 + getpid() % 50) + ".0.0/16";
    mopts.warm_pool = warm_pool_;
    mopts.warm_pool_per_template = warm_pool_per_template_;
    mopts.templates = templates_;
    auto m = SandboxManager::open(mopts);
    ASSERT_TRUE(m.has_value()) << m.status().to_string();
    manager_ = std::move(m).value();
    http::Router router;
    SandboxApi::add_routes(router, *manager_);
    http::HttpServerOptions hopts;
    hopts.port = 0;
    hopts.max_body_bytes = 1 << 20;
    server_ = std::make_unique<http::HttpServer>(std::move(router), hopts);
    ASSERT_TRUE(server_->start().is_ok());
    client_ = std::make_unique<http::HttpClient>("127.0.0.1", server_->port());
  }

  void TearDown() override {
    if (server_) server_->stop();
    std::string root = manager_ ? manager_->options().root : "";
    manager_.reset();
    if (!root.empty()) std::system(("rm -rf " + root).c_str());
  }

  http::ClientResponse call(const std::string& method, const std::string& target, const std::string& body = {}) {
    auto r = client_->request(method, target, body);
    EXPECT_TRUE(r.has_value()) << r.status().to_string();
    return r.has_value() ? *r : http::ClientResponse{};
  }

  json call_json(const std::string& method, const std::string& target, const json& body, int want_status) {
    auto r = call(method, target, body.is_null() ? "" : body.dump());
    EXPECT_EQ(r.status, want_status) << method << " " << target << " -> " << r.body;
    json j = json::parse(r.body, nullptr, false);
    return j.is_discarded() ? json() : j;
  }

  std::string create(const json& spec = json::object()) {
    json j = call_json("POST", "/v1/sandboxes", spec, 201);
    return j.value("id", "");
  }

  json exec(const std::string& id, const json& body) {
    return call_json("POST", "/v1/sandboxes/" + id + "/exec", body, 200);
  }
  json sh(const std::string& id, const std::string& script, double timeout_s = 30) {
    return exec(id, {{"shell", script}, {"timeout_s", timeout_s}});
  }

  // Set in a derived fixture's constructor.
  int warm_pool_ = 0;
  std::map<std::string, int> warm_pool_per_template_;  // ManagerOptions::warm_pool_per_template
  int max_sandboxes_ = 16;
  int max_execs_ = 0;
  std::map<std::string, std::string> templates_;  // ManagerOptions::templates
  std::unique_ptr<SandboxManager> manager_;
  std::unique_ptr<http::HttpServer> server_;
  std::unique_ptr<http::HttpClient> client_;
};

// Polls `count` until it returns `want` (up to ~2 s) and returns its last value: counts that settle
// asynchronously (a server closing its end of a finished connection, a process being reaped).
template <class F>
int settled_count(F count, int want) {
  int n = count();
  for (int i = 0; i < 200 && n != want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    n = count();
  }
  return n;
}

// Open descriptors of this process.
inline int count_my_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
    --n;  // the directory stream's own descriptor
  }
  return n;
}

// Host processes whose command line contains `marker` (scans /proc).
// The command line of every host process, NULs as spaces.
inline std::vector<std::string> host_cmdlines() {
  std::vector<std::string> out;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/cmdline");
    std::stringstream ss;
    ss << f.rdbuf();
    std::string cmd = ss.str();
    for (char& c : cmd) c = c ? c : ' ';
    out.push_back(std::move(cmd));
  }
  closedir(d);
  return out;
}

inline int count_host_processes(const std::string& marker) {
  int n = 0;
  for (const std::string& cmd : host_cmdlines()) n += cmd.find(marker) != std::string::npos;
  return n;
}

// Waits (up to timeout_s) until a host process whose command line starts with `prefix` runs: the
// command itself, not only a shell or wrapper that will start it.
inline bool wait_for_host_process(const std::string& prefix, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    for (const std::string& cmd : host_cmdlines()) {
      if (cmd.rfind(prefix, 0) == 0) return true;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Zombie children of this test process.
inline int count_my_zombies() {
  int n = 0;
  DIR* d = opendir("/proc");
  std::string me = std::to_string(getpid());
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    std::getline(f, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state, ppid;
    rest >> state >> ppid;
    if (state == "Z" && ppid == me) ++n;
  }
  closedir(d);
  return n;
}

// Processes named `comm` whose parent is pid 1 (orphans, e.g. of a dead daemon).
inline int count_orphans_named(const std::string& comm) {
  int n = 0;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    std::getline(f, line);
    size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state, ppid;
    rest >> state >> ppid;
    if (line.substr(open + 1, close - open - 1) == comm && ppid == "1" && state != "Z") ++n;
  }
  closedir(d);
  return n;
}

// Mount points under `prefix` in this process's mount namespace.
inline int count_mounts_under(const std::string& prefix) {
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    std::istringstream ls(line);
    std::string a, b, c, root, mount_point;
    ls >> a >> b >> c >> root >> mount_point;
    if (mount_point.rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

}  // namespace tidal::sandbox::testing
