// Leak test: many create/exec/destroy cycles through the HTTP API (with forks, file writes and a
// command left running at delete time now and then), counting everything a sandbox can leave
// behind: mounts, cgroup directories, sandbox directories, processes, zombies and descriptors.
// Every count must be back to its starting value.
//
// Cycles: $TIDAL_SANDBOX_LEAK_CYCLES (default 300, a few seconds); a 10,000-cycle run is recorded
// in docs/sandbox-api.md.
#include <dirent.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "sandbox_test_env.h"

namespace tidal::sandbox::testing {
namespace {

namespace fs = std::filesystem;

struct Counts {
  int mounts = 0, cgroup_dirs = 0, sandbox_dirs = 0, descendants = 0, zombies = 0, fds = 0;
  // No count above o's: nothing grew. (A count may be lower: the baseline can still hold a
  // sandbox that was being reaped when it was taken.)
  bool within(const Counts& o) const {
    return mounts <= o.mounts && cgroup_dirs <= o.cgroup_dirs && sandbox_dirs <= o.sandbox_dirs &&
           descendants <= o.descendants && zombies <= o.zombies && fds <= o.fds;
  }
};

std::ostream& operator<<(std::ostream& os, const Counts& c) {
  return os << "{mounts " << c.mounts << ", cgroup dirs " << c.cgroup_dirs << ", sandbox dirs " << c.sandbox_dirs
            << ", processes " << c.descendants << ", zombies " << c.zombies << ", fds " << c.fds << "}";
}

// Mounts whose mount point lies under `root` (this test's daemon). Other tests running in
// parallel (ctest -j) mount and unmount their own sandboxes, so the host-wide count is not stable.
int count_mounts_under(const std::string& root) {
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, source_root, mount_point;
    fields >> id >> parent >> dev >> source_root >> mount_point;
    if (mount_point.rfind(root, 0) == 0) ++n;
  }
  return n;
}

// Directories below every cgroup directory named `base` (the daemon's base group, all hierarchies),
// at any depth (sandbox groups and lease share groups).
int count_cgroup_dirs(const std::string& base) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator("/sys/fs/cgroup", fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) {
      continue;
    }
    if (it->path().filename() == base) {
      for (auto sub = fs::recursive_directory_iterator(it->path(), ec); !ec && sub != fs::recursive_directory_iterator();
           sub.increment(ec)) {
        n += sub->is_directory(ec) ? 1 : 0;
      }
      it.disable_recursion_pending();
    } else if (it.depth() >= 5) {
      it.disable_recursion_pending();
    }
  }
  return n;
}

// Processes descending from this one (sandbox inits, exec trees, helpers).
int count_descendants() {
  std::map<int, int> parent;
  DIR* d = opendir("/proc");
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    std::getline(f, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    parent[std::atoi(e->d_name)] = ppid;
  }
  closedir(d);
  int me = getpid(), n = 0;
  for (const auto& [pid, pp] : parent) {
    for (int p = pp, hops = 0; p > 1 && hops < 64; p = parent.count(p) ? parent[p] : 0, ++hops) {
      if (p == me) {
        ++n;
        break;
      }
    }
  }
  return n;
}

std::string base_group_name(const std::string& root) {
  static const char* kHex = "0123456789abcdef";
  uint64_t v = std::hash<std::string>{}(root);
  std::string s(8, '0');
  for (int i = 7; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kHex[v & 15];
  return "tidal-sandbox-" + s;
}

class Leak : public SandboxService {
 protected:
  Counts counts() {
    Counts c;
    const std::string root = manager_->options().root;
    c.mounts = count_mounts_under(root);
    c.cgroup_dirs = count_cgroup_dirs(base_group_name(root));
    std::error_code ec;
    for (auto it = fs::directory_iterator(root + "/sandboxes", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      ++c.sandbox_dirs;
    }
    c.descendants = count_descendants();
    c.zombies = count_my_zombies();
    c.fds = count_my_fds();
    return c;
  }
};

TEST_F(Leak, CreateExecDestroyCyclesLeaveNothing) {
  const char* env = std::getenv("TIDAL_SANDBOX_LEAK_CYCLES");
  const int cycles = env ? std::atoi(env) : 300;
  // Warm up lazily opened things (client connection, server workers, seccomp, template).
  Counts empty = counts();
  std::string warm = create();
  sh(warm, "true");
  // The counters see a live sandbox (else they would prove nothing).
  Counts live = counts();
  EXPECT_EQ(live.mounts, empty.mounts + 2);  // its tmpfs and overlay
  EXPECT_EQ(live.sandbox_dirs, empty.sandbox_dirs + 1);
  EXPECT_GE(live.descendants, empty.descendants + 1);  // its init
  if (manager_->cgroups_enabled()) {
    EXPECT_GT(live.cgroup_dirs, empty.cgroup_dirs) << live;
  }
  call("DELETE", "/v1/sandboxes/" + warm);
  // Waits (up to 2 s, for reaps on a loaded machine) until no count is above `want`.
  auto settle = [&](const Counts& want) {
    Counts now = counts();
    for (int i = 0; i < 200 && !now.within(want); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      now = counts();
    }
    return now;
  };
  // The baseline: back to the state before the warm-up sandbox, or what is left after 2 s (a
  // lazily opened thing that stays, e.g. a connection).
  const Counts before = settle(empty);
  // Every 4th sandbox belongs to a lease: its CPU share group (a cgroup level) comes and goes with it.
  std::string lease = call_json("POST", "/v1/leases", {{"ttl_s", 3600}}, 201).value("id", "");
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < cycles; ++i) {
    json spec = i % 7 == 3 ? json{{"network", "loopback"}} : json::object();
    if (i % 4 == 1) spec["lease"] = lease;
    std::string id = create(spec);
    ASSERT_FALSE(id.empty()) << "cycle " << i;
    ASSERT_EQ(exec(id, {{"cmd", {"true"}}})["exit_code"], 0) << "cycle " << i;
    if (i % 10 == 5) {  // files, a copy-on-write fork and a grandchild
      ASSERT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/f", std::string(4096, 'x')).status, 200);
      std::string child = call_json("POST", "/v1/sandboxes/" + id + "/fork", nullptr, 201).value("id", "");
      ASSERT_FALSE(child.empty()) << "cycle " << i;
      sh(child, "echo more > /workspace/g");
      std::string grandchild = call_json("POST", "/v1/sandboxes/" + child + "/fork", nullptr, 201).value("id", "");
      call("DELETE", "/v1/sandboxes/" + child);
      EXPECT_EQ(sh(grandchild, "cat /workspace/g")["stdout"], "more\n");
      call("DELETE", "/v1/sandboxes/" + grandchild);
    }
    if (i % 50 == 25) {  // delete while a command runs
      std::thread t([&, id] {
        http::HttpClient c("127.0.0.1", server_->port());
        (void)c.request("POST", "/v1/sandboxes/" + id + "/exec", R"({"shell":"sleep 100 & sleep 100","timeout_s":30})");
      });
      for (int k = 0; k < 500 && manager_->get(id).value()->info().execs_running == 0; ++k) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      ASSERT_EQ(call("DELETE", "/v1/sandboxes/" + id).status, 200);
      t.join();
    } else {
      ASSERT_EQ(call("DELETE", "/v1/sandboxes/" + id).status, 200) << "cycle " << i;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  call_json("DELETE", "/v1/leases/" + lease, nullptr, 200);
  Counts after = settle(before);
  EXPECT_TRUE(after.within(before)) << "after " << cycles << " cycles: before " << before << ", after " << after;
  EXPECT_EQ(manager_->n_live(), 0u);
  std::printf("[ leak ] %d cycles in %.1f s: before %s, after %s\n", cycles, secs,
              (std::ostringstream() << before).str().c_str(), (std::ostringstream() << after).str().c_str());
}

}  // namespace
}  // namespace tidal::sandbox::testing
