// CgroupHost and Cgroup against a fake kernel: cgroup v2 (and v1) code paths without root and
// without a cgroup mount. FakeKernel is a CgroupFs over a temporary directory that behaves like
// cgroupfs where the code depends on it: mkdir creates the interface files of the controllers the
// parent enables (and only those), writes go to existing files only and are validated like the
// kernel does (cpu.max, cpu.weight, subtree_control tokens, the no-internal-process rule), a pid
// written to cgroup.procs leaves its old group, rmdir fails with EBUSY while a group has processes
// or children and otherwise takes the interface files with it, cgroup.kill and kill() empty
// groups. Values the kernel computes (cpu.stat, memory.events, memory.current) the test writes.
#include "tidal/sandbox/cgroup.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test_files.h"

namespace tidal::sandbox {
namespace {

namespace fs = std::filesystem;

void put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::set<std::string> split_words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> out;
  std::string w;
  while (in >> w) out.insert(w);
  return out;
}

std::string join(const std::set<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

bool is_uint(const std::string& s) {
  return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class FakeKernel : public CgroupFs {
 public:
  struct Mount {
    std::string point;
    bool v2 = true;
    std::set<std::string> v1_controllers;  // a v1 hierarchy's controllers
    bool is_root = true;  // the point is the hierarchy's root (no-internal-process rule exempt)
  };
  bool has_kill = true;          // cgroup.kill (Linux 5.14+)
  bool has_swap = true;          // memory.swap.max / memory.memsw.limit_in_bytes
  bool freeze_completes = true;  // cgroup.events reports "frozen 1" right after cgroup.freeze=1
  std::vector<int> killed;       // pids killed by kill() or cgroup.kill
  int kill_calls = 0;

  // A mount whose root directory holds the root group's files; v2 `controllers` are what the
  // root offers (cgroup.controllers).
  void add_v2_mount(const std::string& point, const std::string& controllers, bool is_root = true) {
    fs::create_directories(point);
    put(point + "/cgroup.controllers", controllers);
    put(point + "/cgroup.subtree_control", "");
    put(point + "/cgroup.procs", "");
    put(point + "/cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
    if (!is_root) {  // a container's view: the mount shows a non-root group
      put(point + "/cgroup.events", "populated 1\nfrozen 0\n");
      put(point + "/cgroup.freeze", "0");
    }
    mounts_.push_back({point, true, {}, is_root});
  }
  void add_v1_mount(const std::string& point, const std::set<std::string>& controllers) {
    fs::create_directories(point);
    mounts_.push_back({point, false, controllers, true});
    for (const auto& [name, value] : v1_files(mounts_.back())) put(point + "/" + name, value);
  }

  bool mkdir(const std::string& path) override {
    if (fs::exists(path)) return fail(EEXIST);
    std::string parent = path.substr(0, path.rfind('/'));
    const Mount* m = mount_of(parent);
    if (!m || !fs::is_directory(parent)) return fail(ENOENT);
    fs::create_directory(path);
    if (!m->v2) {
      for (const auto& [name, value] : v1_files(*m)) put(path + "/" + name, value);
      return true;
    }
    std::set<std::string> enabled = split_words(slurp(parent + "/cgroup.subtree_control"));
    put(path + "/cgroup.procs", "");
    put(path + "/cgroup.controllers", join(enabled));
    put(path + "/cgroup.subtree_control", "");
    put(path + "/cgroup.events", "populated 0\nfrozen 0\n");
    put(path + "/cgroup.freeze", "0");
    if (has_kill) put(path + "/cgroup.kill", "");
    put(path + "/cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
    if (enabled.count("memory")) {
      put(path + "/memory.max", "max");
      put(path + "/memory.current", "0");
      put(path + "/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
      if (has_swap) put(path + "/memory.swap.max", "max");
    }
    if (enabled.count("pids")) {
      put(path + "/pids.max", "max");
      put(path + "/pids.current", "0");
    }
    if (enabled.count("cpu")) {
      put(path + "/cpu.max", "max 100000");
      put(path + "/cpu.weight", "100");
    }
    return true;
  }

  bool rmdir(const std::string& path) override {
    if (!fs::is_directory(path)) return fail(ENOENT);
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.is_directory()) return fail(EBUSY);  // a live child group
    }
    if (!trim(slurp(path + "/cgroup.procs")).empty()) return fail(EBUSY);
    fs::remove_all(path);  // the interface files go with the group
    return true;
  }

  bool write(const std::string& path, const std::string& value) override {
    if (!fs::is_regular_file(path)) return fail(ENOENT);  // cgroupfs files cannot be created
    writes_[path] = value;
    std::string dir = path.substr(0, path.rfind('/')), name = path.substr(path.rfind('/') + 1);
    const Mount* m = mount_of(dir);
    if (!m) return fail(ENOENT);
    bool root = dir == m->point && m->is_root;
    if (name == "cgroup.procs") {
      if (!is_uint(value)) return fail(EINVAL);
      if (m->v2 && !root && !trim(slurp(dir + "/cgroup.subtree_control")).empty()) return fail(EBUSY);
      int pid = std::stoi(value);
      remove_pid(*m, pid);
      std::ofstream(path, std::ios::app) << pid << "\n";
      return true;
    }
    if (name == "cgroup.subtree_control") {
      std::set<std::string> available = split_words(slurp(dir + "/cgroup.controllers"));
      std::set<std::string> enabled = split_words(slurp(path));
      for (const auto& token : split_words(value)) {
        if (token.size() < 2 || (token[0] != '+' && token[0] != '-')) return fail(EINVAL);
        std::string c = token.substr(1);
        if (!available.count(c)) return fail(ENOENT);  // all or nothing
        if (token[0] == '+') enabled.insert(c); else enabled.erase(c);
      }
      if (!root && !enabled.empty() && !trim(slurp(dir + "/cgroup.procs")).empty()) return fail(EBUSY);
      put(path, join(enabled));
      return true;
    }
    if (name == "cgroup.freeze") {
      if (value != "0" && value != "1") return fail(EINVAL);
      put(path, value);
      if (value == "0" || freeze_completes) put(dir + "/cgroup.events", "populated 0\nfrozen " + value + "\n");
      return true;
    }
    if (name == "cgroup.kill") {
      if (value != "1") return fail(EINVAL);
      for (const auto& e : fs::recursive_directory_iterator(dir)) {  // the group and its descendants
        if (e.path().filename() == "cgroup.procs") kill_procs(e.path().string());
      }
      return true;
    }
    if (name == "memory.max" || name == "pids.max" || name == "memory.swap.max") {
      if (value != "max" && !is_uint(value)) return fail(EINVAL);
    } else if (name == "cpu.max") {  // "$MAX $PERIOD": MAX "max" or >= 1 ms, PERIOD 1 ms .. 1 s
      std::istringstream in(value);
      std::string max, period, extra;
      in >> max >> period >> extra;
      if (!extra.empty() || (max != "max" && (!is_uint(max) || std::stoll(max) < 1000))) return fail(EINVAL);
      if (!period.empty() && (!is_uint(period) || std::stoll(period) < 1000 || std::stoll(period) > 1000000)) {
        return fail(EINVAL);
      }
    } else if (name == "cpu.weight") {
      if (!is_uint(value) || std::stoll(value) < 1 || std::stoll(value) > 10000) return fail(ERANGE);
    } else if (name == "cgroup.controllers" || name == "cgroup.events" || name == "cpu.stat" ||
               name == "memory.current" || name == "memory.events" || name == "pids.current") {
      return fail(EACCES);  // read-only
    } else if (name == "cpu.cfs_quota_us") {
      if (value != "-1" && (!is_uint(value) || std::stoll(value) < 1000)) return fail(EINVAL);
    } else if (name == "cpu.shares") {
      if (!is_uint(value) || std::stoll(value) < 2) return fail(EINVAL);
    } else if (name == "freezer.state") {
      if (value != "FROZEN" && value != "THAWED") return fail(EINVAL);
    }
    put(path, value);
    return true;
  }

  bool kill(int pid, int sig) override {
    EXPECT_EQ(sig, SIGKILL);
    ++kill_calls;
    bool found = false;
    for (const auto& m : mounts_) found = remove_pid(m, pid) || found;
    if (found) killed.push_back(pid);
    return found || fail(ESRCH);
  }

  // The last value written to `path` through the CgroupFs ("" if none).
  std::string written(const std::string& path) const {
    auto it = writes_.find(path);
    return it == writes_.end() ? std::string() : it->second;
  }
  bool was_written(const std::string& path) const { return writes_.count(path) > 0; }

 private:
  static bool fail(int e) {
    errno = e;
    return false;
  }
  const Mount* mount_of(const std::string& path) const {
    const Mount* best = nullptr;
    for (const auto& m : mounts_) {
      if ((path == m.point || path.rfind(m.point + "/", 0) == 0) && (!best || m.point.size() > best->point.size())) {
        best = &m;
      }
    }
    return best;
  }
  std::map<std::string, std::string> v1_files(const Mount& m) const {
    std::map<std::string, std::string> f = {{"cgroup.procs", ""}, {"tasks", ""}};
    if (m.v1_controllers.count("memory")) {
      f["memory.limit_in_bytes"] = "9223372036854771712";
      f["memory.usage_in_bytes"] = "0";
      f["memory.oom_control"] = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
      if (has_swap) f["memory.memsw.limit_in_bytes"] = "9223372036854771712";
    }
    if (m.v1_controllers.count("pids")) f["pids.max"] = "max";
    if (m.v1_controllers.count("cpu")) {
      f["cpu.cfs_period_us"] = "100000";
      f["cpu.cfs_quota_us"] = "-1";
      f["cpu.shares"] = "1024";
    }
    if (m.v1_controllers.count("cpuacct")) f["cpuacct.usage"] = "0";
    if (m.v1_controllers.count("freezer")) f["freezer.state"] = "THAWED";
    return f;
  }
  // Takes `pid` out of every group of the hierarchy; true if it was in one.
  bool remove_pid(const Mount& m, int pid) {
    bool found = false;
    for (const auto& e : fs::recursive_directory_iterator(m.point)) {
      if (e.path().filename() != "cgroup.procs") continue;
      std::istringstream in(slurp(e.path().string()));
      std::string kept;
      int p;
      while (in >> p) {
        if (p == pid) found = true; else kept += std::to_string(p) + "\n";
      }
      put(e.path().string(), kept);
    }
    return found;
  }
  void kill_procs(const std::string& procs) {
    std::istringstream in(slurp(procs));
    int p;
    while (in >> p) killed.push_back(p);
    put(procs, "");
  }

  std::vector<Mount> mounts_;
  std::map<std::string, std::string> writes_;
};

// A temporary directory, removed with the test.
class CgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "tidal-cgroup-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    kernel_ = std::make_shared<FakeKernel>();
  }
  void TearDown() override { fs::remove_all(tmp_); }

  // A v2 host like systemd's: root -> system.slice -> tidal.service (the daemon's group), with
  // `delegated` enabled for tidal.service by its parent. `daemon_procs` are already in it.
  std::shared_ptr<CgroupHost> v2_host(const std::string& delegated = "cpu memory pids",
                                      const std::vector<int>& daemon_procs = {},
                                      const std::string& other_mounts = "") {
    mount_ = tmp_ + "/cgroup";
    kernel_->add_v2_mount(mount_, "cpuset cpu io memory hugetlb pids rdma misc");
    EXPECT_TRUE(kernel_->write(mount_ + "/cgroup.subtree_control", "+cpuset +cpu +io +memory +pids"));
    EXPECT_TRUE(kernel_->mkdir(mount_ + "/system.slice"));
    std::string enable;
    for (const auto& c : split_words(delegated)) enable += "+" + c + " ";
    EXPECT_TRUE(kernel_->write(mount_ + "/system.slice/cgroup.subtree_control", enable));
    self_ = mount_ + "/system.slice/tidal.service";
    EXPECT_TRUE(kernel_->mkdir(self_));
    for (int pid : daemon_procs) EXPECT_TRUE(kernel_->write(self_ + "/cgroup.procs", std::to_string(pid)));
    return CgroupHost::detect_from(other_mounts + mountinfo_v2(mount_, "/"), "0::/system.slice/tidal.service\n", kBase,
                                   kernel_);
  }

  static std::string mountinfo_v2(const std::string& point, const std::string& root) {
    return "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
           "25 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
           "26 22 0:27 " + root + " " + point +
           " rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
  }

  static constexpr const char* kBase = "tidal-sandbox-test";
  std::string tmp_, mount_, self_;
  std::shared_ptr<FakeKernel> kernel_;
};

std::vector<std::string> child_names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(CgroupTest, V2DetectEnablesControllersInTheDaemonsGroupAndTheBase) {
  auto host = v2_host();
  std::string base = self_ + "/" + kBase;
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  EXPECT_EQ(host->describe(), "cgroup v2 (+memory +pids +cpu) at " + base);
  EXPECT_EQ(trim(slurp(self_ + "/cgroup.subtree_control")), "cpu memory pids");
  EXPECT_EQ(trim(slurp(base + "/cgroup.subtree_control")), "cpu memory pids");
  EXPECT_FALSE(fs::exists(self_ + "/tidal-daemon"));  // the daemon's group had no processes
  host->remove_base();
  EXPECT_FALSE(fs::exists(base));
}

TEST_F(CgroupTest, V2IsChosenWhenNoUsableV1MemoryOrPidsHierarchyIsMounted) {
  // Hybrid leftovers: a named v1 hierarchy and a v1 cpuset (neither memory nor pids), and a v1
  // memory hierarchy whose directory cannot be written (here: does not exist).
  std::string v1 = "40 31 0:37 / " + tmp_ + "/v1/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n" +
                   "41 31 0:38 / " + tmp_ + "/v1/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";
  auto host = v2_host("cpu memory pids", {}, v1);
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  v1 += "42 31 0:39 / " + tmp_ + "/v1/memory rw,relatime - cgroup cgroup rw,memory\n";
  host = CgroupHost::detect_from(v1 + mountinfo_v2(mount_, "/"),
                                 "5:memory:/\n3:cpuset:/\n1:name=systemd:/\n0::/system.slice/tidal.service\n", kBase,
                                 kernel_);
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  EXPECT_EQ(host->describe(), "cgroup v2 (+memory +pids +cpu) at " + self_ + "/" + kBase);
}

TEST_F(CgroupTest, V2WithoutCpuDelegatedLimitsMemoryAndPidsOnly) {
  // cpuset is delegated, cpu is not: "+cpu" must not be asked for (cpuset contains "cpu").
  auto host = v2_host("cpuset memory pids");
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  EXPECT_EQ(host->describe(), "cgroup v2 (+memory +pids) at " + self_ + "/" + kBase);
  CgroupLimits limits{1500, 256 << 20, 64};
  auto group = host->create("sb1", limits);
  ASSERT_TRUE(group.has_value()) << group.status().message();
  std::string dir = self_ + "/" + kBase + "/no-lease/sb1";
  EXPECT_EQ(slurp(dir + "/memory.max"), "268435456");
  EXPECT_EQ(slurp(dir + "/pids.max"), "64");
  EXPECT_FALSE(fs::exists(dir + "/cpu.max"));
  EXPECT_FALSE(kernel_->was_written(dir + "/cpu.max"));
  EXPECT_TRUE((*group)->remove().is_ok());
}

TEST_F(CgroupTest, V2WithoutMemoryOrPidsDelegatedHasNoLimits) {
  auto host = v2_host("cpu pids");
  EXPECT_EQ(host->version(), CgroupVersion::kNone);
  EXPECT_EQ(host->describe(), "none: cgroup v2 at " + self_ +
                                  " has no delegated memory controller (cgroup.controllers lists only what the "
                                  "parent group delegates)");
  auto group = host->create("sb1", CgroupLimits{1000, 1 << 30, 10});
  ASSERT_TRUE(group.has_value());
  EXPECT_TRUE((*group)->procs_files().empty());  // a kNone host gives empty groups
  EXPECT_FALSE(fs::exists(self_ + "/" + kBase));
}

TEST_F(CgroupTest, V2WithOnlyCpuDelegatedNamesBothMissingControllers) {
  auto host = v2_host("cpu");
  EXPECT_EQ(host->version(), CgroupVersion::kNone);
  EXPECT_NE(host->describe().find("has no delegated memory+pids controllers"), std::string::npos) << host->describe();
}

TEST_F(CgroupTest, V2DaemonMovesIntoALeafWhenItsGroupHasProcesses) {
  // The no-internal-process rule: subtree_control cannot be set while the group holds processes.
  int me = static_cast<int>(::getpid());
  auto host = v2_host("cpu memory pids", {me});
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  EXPECT_EQ(trim(slurp(self_ + "/tidal-daemon/cgroup.procs")), std::to_string(me));
  EXPECT_EQ(trim(slurp(self_ + "/cgroup.procs")), "");
  EXPECT_EQ(trim(slurp(self_ + "/cgroup.subtree_control")), "cpu memory pids");
  // cleanup_stale leaves the daemon's leaf alone (it is not under the base).
  EXPECT_EQ(host->cleanup_stale(), 0);
  EXPECT_TRUE(fs::exists(self_ + "/tidal-daemon"));
}

TEST_F(CgroupTest, V2OtherProcessesInTheDaemonsGroupMeanNoLimits) {
  int me = static_cast<int>(::getpid());
  auto host = v2_host("cpu memory pids", {me, 999999});  // 999999: another process of the service
  EXPECT_EQ(host->version(), CgroupVersion::kNone);
  EXPECT_EQ(host->describe(), "none: cannot enable controllers in " + self_ +
                                  "/cgroup.subtree_control: " + std::strerror(EBUSY) +
                                  " (other processes in the daemon's group?)");
}

TEST_F(CgroupTest, V2CreateWritesLimitsUnderTheShareGroupWhichLivesAsLongAsItsSandboxes) {
  auto host = v2_host();
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  std::string base = self_ + "/" + kBase;
  CgroupLimits limits{1500, 256 << 20, 64};
  auto a = host->create("sb-a", limits);
  ASSERT_TRUE(a.has_value()) << a.status().message();
  std::string dir = base + "/no-lease/sb-a";
  EXPECT_EQ(trim(slurp(base + "/no-lease/cgroup.subtree_control")), "cpu memory pids");
  EXPECT_EQ(slurp(dir + "/cpu.max"), "150000 100000");  // 1.5 cores: $MAX $PERIOD
  EXPECT_EQ(slurp(dir + "/cpu.weight"), std::to_string(cpu_weight(1500)));
  EXPECT_EQ(slurp(dir + "/cpu.weight"), "150");
  EXPECT_EQ(slurp(dir + "/memory.max"), "268435456");
  EXPECT_EQ(slurp(dir + "/memory.swap.max"), "0");  // no swap beyond the memory limit
  EXPECT_EQ(slurp(dir + "/pids.max"), "64");
  EXPECT_EQ((*a)->procs_files(), std::vector<std::string>{dir + "/cgroup.procs"});
  EXPECT_EQ((*a)->group(), "no-lease");
  EXPECT_EQ(host->n_groups(), 1u);

  // A second sandbox of the same share group, and one of a lease.
  auto b = host->create("sb-b", CgroupLimits{10, 0, 0});
  ASSERT_TRUE(b.has_value()) << b.status().message();
  EXPECT_EQ(slurp(base + "/no-lease/sb-b/cpu.max"), "1000 100000");  // the API's minimum, 10 millis
  EXPECT_EQ(slurp(base + "/no-lease/sb-b/cpu.weight"), "1");
  EXPECT_EQ(slurp(base + "/no-lease/sb-b/memory.max"), "max");  // 0: left as it is
  auto c = host->create("sb-c", CgroupLimits{64000, 0, 0}, "lease-1");
  ASSERT_TRUE(c.has_value()) << c.status().message();
  EXPECT_EQ(slurp(base + "/lease-1/sb-c/cpu.weight"), "6400");
  EXPECT_EQ(host->n_groups(), 2u);
  EXPECT_EQ(child_names(base), (std::vector<std::string>{"lease-1", "no-lease"}));

  // The kernel's accounting: the test writes it.
  put(dir + "/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n");
  put(dir + "/memory.current", "12345678\n");
  put(dir + "/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n");
  EXPECT_EQ((*a)->cpu_ms(), 2500);
  EXPECT_EQ((*a)->memory_bytes(), 12345678);
  EXPECT_EQ((*a)->oom_kills(), 2u);
  EXPECT_TRUE(kernel_->write(dir + "/cgroup.procs", "4001"));  // processes join
  EXPECT_TRUE(kernel_->write(dir + "/cgroup.procs", "4002"));
  EXPECT_EQ((*a)->pids(), (std::vector<int>{4001, 4002}));

  put(base + "/no-lease/cpu.stat", "usage_usec 3000000\nuser_usec 3000000\nsystem_usec 0\n");
  EXPECT_EQ(host->group_cpu_ms("no-lease"), 3000);
  EXPECT_EQ(host->group_cpu_ms("nobody"), 0);

  // A group with processes cannot be removed; kill_all empties it (cgroup.kill) first.
  ASSERT_TRUE((*a)->kill_all().is_ok());
  EXPECT_EQ(kernel_->written(dir + "/cgroup.kill"), "1");
  EXPECT_EQ(kernel_->kill_calls, 0);
  EXPECT_EQ(kernel_->killed, (std::vector<int>{4001, 4002}));
  EXPECT_TRUE((*a)->remove().is_ok());
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(fs::exists(base + "/no-lease"));  // sb-b still uses it
  EXPECT_TRUE((*b)->remove().is_ok());
  EXPECT_FALSE(fs::exists(base + "/no-lease"));  // removed with its last sandbox
  EXPECT_EQ(host->n_groups(), 1u);
  EXPECT_EQ(host->group_cpu_ms("no-lease"), 3000);  // kept after the group is gone

  // The group comes back with the next sandbox; its CPU adds to the earlier incarnation's.
  auto d = host->create("sb-d", limits);
  ASSERT_TRUE(d.has_value()) << d.status().message();
  put(base + "/no-lease/cpu.stat", "usage_usec 500000\nuser_usec 500000\nsystem_usec 0\n");
  EXPECT_EQ(host->group_cpu_ms("no-lease"), 3500);
  EXPECT_TRUE((*d)->remove().is_ok());
  EXPECT_EQ(host->group_cpu_ms("no-lease"), 3500);
  host->forget_group("no-lease");  // the lease ended
  EXPECT_EQ(host->group_cpu_ms("no-lease"), 0);
  EXPECT_TRUE((*c)->remove().is_ok());
  EXPECT_TRUE(child_names(base).empty());
  EXPECT_EQ(host->n_groups(), 0u);
}

TEST_F(CgroupTest, V2BadLimitIsRefusedNamingTheFileAndLeavesNothing) {
  auto host = v2_host();
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  auto bad = host->create("sb1", CgroupLimits{5, 0, 0});  // 500 us per period: below the kernel's 1 ms
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.status().message().find("cpu.max"), std::string::npos) << bad.status().message();
  EXPECT_EQ(host->n_groups(), 0u);
  EXPECT_TRUE(child_names(self_ + "/" + kBase).empty());
}

TEST_F(CgroupTest, V2WithoutSwapAccountingSkipsSwapMax) {
  kernel_->has_swap = false;
  auto host = v2_host();
  auto group = host->create("sb1", CgroupLimits{1000, 1 << 30, 0});
  ASSERT_TRUE(group.has_value()) << group.status().message();
  std::string dir = self_ + "/" + kBase + "/no-lease/sb1";
  EXPECT_EQ(slurp(dir + "/memory.max"), "1073741824");
  EXPECT_FALSE(kernel_->was_written(dir + "/memory.swap.max"));
  EXPECT_TRUE((*group)->remove().is_ok());
}

TEST_F(CgroupTest, V2FreezeWritesCgroupFreezeAndWaitsForFrozen) {
  auto host = v2_host();
  auto group = host->create("sb1", CgroupLimits{1000, 1 << 30, 10});
  ASSERT_TRUE(group.has_value()) << group.status().message();
  std::string dir = self_ + "/" + kBase + "/no-lease/sb1";
  ASSERT_TRUE((*group)->freeze(true).is_ok());
  EXPECT_EQ(slurp(dir + "/cgroup.freeze"), "1");
  EXPECT_NE(slurp(dir + "/cgroup.events").find("frozen 1"), std::string::npos);
  ASSERT_TRUE((*group)->freeze(false).is_ok());
  EXPECT_EQ(slurp(dir + "/cgroup.freeze"), "0");
  // A freeze the kernel does not complete (a task stuck in the kernel): the wait is bounded.
  kernel_->freeze_completes = false;
  EXPECT_TRUE((*group)->freeze(true).is_ok());
  EXPECT_EQ(slurp(dir + "/cgroup.freeze"), "1");
  EXPECT_TRUE((*group)->freeze(false).is_ok());
  EXPECT_TRUE((*group)->remove().is_ok());
}

TEST_F(CgroupTest, V2KillAllWithoutCgroupKillFreezesAndSignalsEachProcess) {
  kernel_->has_kill = false;  // before Linux 5.14
  auto host = v2_host();
  auto group = host->create("sb1", CgroupLimits{1000, 1 << 30, 10});
  ASSERT_TRUE(group.has_value()) << group.status().message();
  std::string dir = self_ + "/" + kBase + "/no-lease/sb1";
  for (const char* pid : {"5001", "5002", "5003"}) ASSERT_TRUE(kernel_->write(dir + "/cgroup.procs", pid));
  ASSERT_TRUE((*group)->kill_all().is_ok());
  EXPECT_FALSE(fs::exists(dir + "/cgroup.kill"));
  EXPECT_EQ(kernel_->written(dir + "/cgroup.freeze"), "0");  // frozen for the kill, then thawed
  EXPECT_EQ(kernel_->killed, (std::vector<int>{5001, 5002, 5003}));
  EXPECT_TRUE((*group)->pids().empty());
  EXPECT_TRUE((*group)->remove().is_ok());
  EXPECT_FALSE(fs::exists(dir));
}

TEST_F(CgroupTest, V2RegroupMovesTheSandboxAndItsProcessesToAnotherShareGroup) {
  auto host = v2_host();
  std::string base = self_ + "/" + kBase;
  auto group = host->create("sb1", CgroupLimits{1000, 1 << 30, 10});
  ASSERT_TRUE(group.has_value()) << group.status().message();
  Cgroup& g = **group;
  ASSERT_TRUE(kernel_->write(base + "/no-lease/sb1/cgroup.procs", "6001"));
  ASSERT_TRUE(kernel_->write(base + "/no-lease/sb1/cgroup.procs", "6002"));

  // Failure (the new limits are refused): nothing changes.
  Status bad = g.regroup("lease-a", CgroupLimits{5, 0, 0});
  EXPECT_FALSE(bad.is_ok());
  EXPECT_EQ(g.group(), "no-lease");
  EXPECT_EQ(g.procs_files(), std::vector<std::string>{base + "/no-lease/sb1/cgroup.procs"});
  EXPECT_EQ(g.pids(), (std::vector<int>{6001, 6002}));
  EXPECT_EQ(child_names(base), std::vector<std::string>{"no-lease"});
  EXPECT_EQ(host->n_groups(), 1u);

  ASSERT_TRUE(g.regroup("lease-a", CgroupLimits{2000, int64_t{2} << 30, 20}).is_ok());
  std::string dir = base + "/lease-a/sb1";
  EXPECT_EQ(g.group(), "lease-a");
  EXPECT_EQ(g.procs_files(), std::vector<std::string>{dir + "/cgroup.procs"});
  EXPECT_EQ(trim(slurp(dir + "/cgroup.procs")), "6001\n6002");
  EXPECT_EQ(g.pids(), (std::vector<int>{6001, 6002}));
  EXPECT_EQ(slurp(dir + "/cpu.max"), "200000 100000");
  EXPECT_EQ(slurp(dir + "/memory.max"), "2147483648");
  EXPECT_EQ(slurp(dir + "/pids.max"), "20");
  EXPECT_EQ(child_names(base), std::vector<std::string>{"lease-a"});  // no-lease left with its last sandbox
  EXPECT_EQ(host->n_groups(), 1u);
  put(dir + "/memory.events", "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\noom_group_kill 0\n");
  EXPECT_EQ(g.oom_kills(), 1u);

  // Same group: only the limits change.
  ASSERT_TRUE(g.regroup("lease-a", CgroupLimits{500, 0, 0}).is_ok());
  EXPECT_EQ(slurp(dir + "/cpu.max"), "50000 100000");
  EXPECT_EQ(slurp(dir + "/cpu.weight"), "50");

  ASSERT_TRUE(g.kill_all().is_ok());
  ASSERT_TRUE(g.remove().is_ok());
  EXPECT_TRUE(child_names(base).empty());
  EXPECT_EQ(host->n_groups(), 0u);
}

TEST_F(CgroupTest, V2CleanupStaleKillsAndRemovesWhatAPreviousDaemonLeft) {
  // A previous daemon's sandboxes, some with processes.
  {
    auto old = v2_host();
    ASSERT_EQ(old->version(), CgroupVersion::kV2) << old->describe();
    std::string base = self_ + "/" + kBase;
    for (const auto& dir : {base + "/no-lease", base + "/no-lease/old1", base + "/lease-x", base + "/lease-x/old2",
                            base + "/lease-x/old3"}) {
      ASSERT_TRUE(kernel_->mkdir(dir));
      if (dir.find("old") == std::string::npos) {
        ASSERT_TRUE(kernel_->write(dir + "/cgroup.subtree_control", "+memory +pids +cpu"));
      }
    }
    ASSERT_TRUE(kernel_->write(base + "/no-lease/old1/cgroup.procs", "7001"));
    ASSERT_TRUE(kernel_->write(base + "/lease-x/old2/cgroup.procs", "7002"));
    ASSERT_TRUE(kernel_->write(base + "/lease-x/old2/cgroup.procs", "7003"));
  }
  // The new daemon finds the base in place.
  auto host = CgroupHost::detect_from(mountinfo_v2(mount_, "/"), "0::/system.slice/tidal.service\n", kBase, kernel_);
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  EXPECT_EQ(host->cleanup_stale(), 2);  // two share groups (with three sandboxes)
  std::vector<int> killed = kernel_->killed;
  std::sort(killed.begin(), killed.end());
  EXPECT_EQ(killed, (std::vector<int>{7001, 7002, 7003}));
  std::string base = self_ + "/" + kBase;
  EXPECT_TRUE(child_names(base).empty());
  EXPECT_EQ(kernel_->written(base + "/lease-x/cgroup.kill"), "1");  // the whole tree at once
  host->remove_base();
  EXPECT_FALSE(fs::exists(base));
}

TEST_F(CgroupTest, V2InAContainerUsesThePathRelativeToTheMountsRoot) {
  // The container sees only its own group, mounted at the mount point with root /docker/abc,
  // while /proc/self/cgroup (no cgroup namespace) still names the full path.
  mount_ = tmp_ + "/cgroup";
  kernel_->add_v2_mount(mount_, "cpu memory pids", /*is_root=*/false);
  int me = static_cast<int>(::getpid());
  ASSERT_TRUE(kernel_->write(mount_ + "/cgroup.procs", std::to_string(me)));
  auto host = CgroupHost::detect_from(mountinfo_v2(mount_, "/docker/abc"), "0::/docker/abc\n", kBase, kernel_);
  ASSERT_EQ(host->version(), CgroupVersion::kV2) << host->describe();
  EXPECT_EQ(host->describe(), "cgroup v2 (+memory +pids +cpu) at " + mount_ + "/" + kBase);
  EXPECT_EQ(trim(slurp(mount_ + "/tidal-daemon/cgroup.procs")), std::to_string(me));
  auto group = host->create("sb1", CgroupLimits{1000, 1 << 30, 10});
  ASSERT_TRUE(group.has_value()) << group.status().message();
  EXPECT_EQ(slurp(mount_ + "/" + kBase + "/no-lease/sb1/pids.max"), "10");
  EXPECT_TRUE((*group)->remove().is_ok());
}

TEST_F(CgroupTest, NoCgroupMountMeansNoLimits) {
  auto host = CgroupHost::detect_from(
      "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n", "0::/\n", kBase, kernel_);
  EXPECT_EQ(host->version(), CgroupVersion::kNone);
  EXPECT_EQ(host->describe(), "none: no cgroup filesystem mounted");
  EXPECT_EQ(host->cleanup_stale(), 0);
}

// cgroup v1 as on this dev VM: one hierarchy per controller (cpu and cpuacct apart), a hybrid
// cgroup2 mount without controllers, and the daemon in a memory sub-group.
class CgroupV1Test : public CgroupTest {
 protected:
  std::shared_ptr<CgroupHost> v1_host(bool comount_cpu_cpuacct, const std::string& memory_root = "/") {
    std::string mountinfo = "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n";
    int id = 30;
    auto mount = [&](const std::string& name, const std::set<std::string>& controllers, const std::string& root) {
      std::string point = tmp_ + "/v1/" + name;
      kernel_->add_v1_mount(point, controllers);
      int mount_id = id++;
      mountinfo += std::to_string(mount_id) + " 31 0:" + std::to_string(mount_id) + " " + root + " " + point +
                   " rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw," + name + "\n";
      return point;
    };
    if (comount_cpu_cpuacct) {
      mounts_["cpu"] = mounts_["cpuacct"] = mount("cpu,cpuacct", {"cpu", "cpuacct"}, "/");
    } else {
      mounts_["cpu"] = mount("cpu", {"cpu"}, "/");
      mounts_["cpuacct"] = mount("cpuacct", {"cpuacct"}, "/");
    }
    mounts_["memory"] = mount("memory", {"memory"}, memory_root);
    mounts_["pids"] = mount("pids", {"pids"}, "/");
    mounts_["freezer"] = mount("freezer", {"freezer"}, "/");
    mount("cpuset", {"cpuset"}, "/");
    mountinfo += "41 31 0:38 / " + tmp_ + "/v1/unified rw,relatime - cgroup2 cgroup2 rw\n";
    kernel_->add_v2_mount(tmp_ + "/v1/unified", "");
    std::string self = comount_cpu_cpuacct ? "2:cpu,cpuacct:/\n" : "2:cpuacct:/\n1:cpu:/\n";
    if (memory_root == "/") {  // the daemon in a memory sub-group, as here
      EXPECT_TRUE(kernel_->mkdir(mounts_["memory"] + "/agent"));
      EXPECT_TRUE(kernel_->mkdir(mounts_["memory"] + "/agent/x1"));
      memory_self_ = mounts_["memory"] + "/agent/x1";
      self += "4:memory:/agent/x1\n";
    } else {  // a container: only its own group is mounted
      memory_self_ = mounts_["memory"];
      self += "4:memory:" + memory_root + "\n";
    }
    self = "9:name=systemd:/\n8:pids:/\n6:freezer:/\n3:cpuset:/\n" + self + "0::/\n";
    return CgroupHost::detect_from(mountinfo, self, kBase, kernel_);
  }
  std::map<std::string, std::string> mounts_;
  std::string memory_self_;
};

TEST_F(CgroupV1Test, DetectFindsEachControllersHierarchy) {
  auto host = v1_host(false);
  ASSERT_EQ(host->version(), CgroupVersion::kV1) << host->describe();
  EXPECT_EQ(host->describe(), "cgroup v1 (memory, pids, cpu, cpuacct, freezer)");
  for (const auto& dir : {memory_self_, mounts_["pids"], mounts_["cpu"], mounts_["cpuacct"], mounts_["freezer"]}) {
    EXPECT_TRUE(fs::is_directory(dir + "/" + kBase)) << dir;
  }
  EXPECT_FALSE(fs::exists(tmp_ + "/v1/cpuset/" + kBase));

  auto group = host->create("sb1", CgroupLimits{1500, 256 << 20, 64}, "lease-1");
  ASSERT_TRUE(group.has_value()) << group.status().message();
  std::string mem = memory_self_ + "/" + kBase + "/sb1";
  std::string cpu = mounts_["cpu"] + "/" + kBase + "/lease-1/sb1";
  EXPECT_EQ(slurp(mem + "/memory.limit_in_bytes"), "268435456");
  EXPECT_EQ(slurp(mem + "/memory.memsw.limit_in_bytes"), "268435456");
  EXPECT_EQ(slurp(mounts_["pids"] + "/" + kBase + "/sb1/pids.max"), "64");
  EXPECT_EQ(slurp(cpu + "/cpu.cfs_quota_us"), "150000");
  EXPECT_EQ(slurp(cpu + "/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(slurp(cpu + "/cpu.shares"), std::to_string(cpu_shares(1500)));
  EXPECT_TRUE(fs::is_directory(mounts_["cpuacct"] + "/" + kBase + "/lease-1/sb1"));
  EXPECT_EQ((*group)->procs_files().size(), 5u);
  put(mounts_["cpuacct"] + "/" + kBase + "/lease-1/sb1/cpuacct.usage", "7000000000\n");
  EXPECT_EQ((*group)->cpu_ms(), 7000);
  put(mem + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  EXPECT_EQ((*group)->oom_kills(), 3u);
  ASSERT_TRUE((*group)->freeze(true).is_ok());
  EXPECT_EQ(slurp(mounts_["freezer"] + "/" + kBase + "/sb1/freezer.state"), "FROZEN");
  ASSERT_TRUE((*group)->freeze(false).is_ok());

  // kill_all signals each process found in any hierarchy, then the groups go.
  ASSERT_TRUE(kernel_->write(mem + "/cgroup.procs", "8001"));
  ASSERT_TRUE(kernel_->write(cpu + "/cgroup.procs", "8001"));
  ASSERT_TRUE((*group)->kill_all().is_ok());
  EXPECT_EQ(kernel_->killed, std::vector<int>{8001});
  ASSERT_TRUE((*group)->remove().is_ok());
  EXPECT_FALSE(fs::exists(cpu));
  EXPECT_FALSE(fs::exists(mounts_["cpu"] + "/" + kBase + "/lease-1"));
  EXPECT_FALSE(fs::exists(mem));
  host->remove_base();
  EXPECT_FALSE(fs::exists(memory_self_ + "/" + kBase));
}

TEST_F(CgroupV1Test, CoMountedCpuAndCpuacctShareOneDirectory) {
  kernel_->has_swap = false;
  auto host = v1_host(true);
  ASSERT_EQ(host->version(), CgroupVersion::kV1) << host->describe();
  auto group = host->create("sb1", CgroupLimits{1000, 1 << 30, 10});
  ASSERT_TRUE(group.has_value()) << group.status().message();
  EXPECT_EQ((*group)->procs_files().size(), 4u);  // memory, pids, cpu+cpuacct, freezer
  std::string cpu = mounts_["cpu"] + "/" + kBase + "/no-lease/sb1";
  EXPECT_EQ(slurp(cpu + "/cpu.cfs_quota_us"), "100000");
  EXPECT_FALSE(fs::exists(memory_self_ + "/" + kBase + "/sb1/memory.memsw.limit_in_bytes"));
  ASSERT_TRUE((*group)->regroup("lease-2", CgroupLimits{1000, 1 << 30, 10}).is_ok());
  EXPECT_TRUE(fs::is_directory(mounts_["cpu"] + "/" + kBase + "/lease-2/sb1"));
  EXPECT_FALSE(fs::exists(mounts_["cpu"] + "/" + kBase + "/no-lease"));
  ASSERT_TRUE((*group)->remove().is_ok());
  EXPECT_EQ(host->cleanup_stale(), 0);
}

TEST_F(CgroupV1Test, InAContainerTheMemoryHierarchysRootIsTheContainersGroup) {
  auto host = v1_host(false, "/docker/abc");
  ASSERT_EQ(host->version(), CgroupVersion::kV1) << host->describe();
  EXPECT_EQ(host->describe(), "cgroup v1 (memory, pids, cpu, cpuacct, freezer)");
  EXPECT_TRUE(fs::is_directory(mounts_["memory"] + "/" + kBase));
}

}  // namespace
}  // namespace tidal::sandbox
