#include "tidal/sandbox/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace tidal::sandbox {

bool CgroupFs::write(const std::string& path, const std::string& value) {
  // One write(2) of the whole value: cgroupfs parses each write on its own.
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = ::write(fd, value.data(), value.size());
  int saved = errno;
  ::close(fd);
  if (n == static_cast<ssize_t>(value.size())) return true;
  errno = n < 0 ? saved : EIO;
  return false;
}

std::string CgroupFs::read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool CgroupFs::exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool CgroupFs::mkdir(const std::string& path) { return ::mkdir(path.c_str(), 0755) == 0; }
bool CgroupFs::rmdir(const std::string& path) { return ::rmdir(path.c_str()) == 0; }
bool CgroupFs::kill(int pid, int sig) { return ::kill(pid, sig) == 0; }

std::vector<std::string> CgroupFs::child_dirs(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) {
        out.push_back(dir + "/" + e->d_name);
      }
    }
    closedir(d);
  }
  return out;
}

const std::shared_ptr<CgroupFs>& CgroupFs::system() {
  static const std::shared_ptr<CgroupFs> fs = std::make_shared<CgroupFs>();
  return fs;
}

namespace {
// Reads "key value" lines (memory.events, cpu.stat, memory.oom_control).
int64_t read_keyed(CgroupFs& fs, const std::string& path, const std::string& key) {
  std::istringstream in(fs.read(path));
  std::string k;
  int64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

bool make_dir(CgroupFs& fs, const std::string& path) { return fs.mkdir(path) || errno == EEXIST; }

std::vector<int> read_pids(CgroupFs& fs, const std::string& file) {
  std::vector<int> out;
  std::istringstream in(fs.read(file));
  int pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

// rmdir of a cgroup directory, retried while it is busy (its last tasks are still being reaped).
bool remove_dir(CgroupFs& fs, const std::string& dir, int tries = 200) {
  for (int i = 0; i < tries; ++i) {
    if (fs.rmdir(dir) || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Removes a cgroup directory tree bottom-up (cgroupfs directories are removed with rmdir).
void remove_tree(CgroupFs& fs, const std::string& dir) {
  for (const auto& child : fs.child_dirs(dir)) remove_tree(fs, child);
  remove_dir(fs, dir, 20);
}

// `dir` and every directory below it.
void collect_tree(CgroupFs& fs, const std::string& dir, std::vector<std::string>* out) {
  out->push_back(dir);
  for (const auto& child : fs.child_dirs(dir)) collect_tree(fs, child, out);
}

// The words of a whitespace-separated list (cgroup.controllers).
std::set<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> out;
  std::string w;
  while (in >> w) out.insert(w);
  return out;
}
}  // namespace

int64_t cpu_shares(int64_t cpu_millis) { return std::clamp<int64_t>(cpu_millis * 1024 / 1000, 2, 262144); }
int64_t cpu_weight(int64_t cpu_millis) { return std::clamp<int64_t>(cpu_millis / 10, 1, 10000); }

uint64_t Cgroup::oom_kills() const {
  if (version_ == CgroupVersion::kV1 && !memory_dir_.empty()) {
    return static_cast<uint64_t>(read_keyed(*fs_, memory_dir_ + "/memory.oom_control", "oom_kill"));
  }
  if (version_ == CgroupVersion::kV2) {
    return static_cast<uint64_t>(read_keyed(*fs_, memory_dir_ + "/memory.events", "oom_kill"));
  }
  return 0;
}

int64_t Cgroup::cpu_ms() const {
  if (version_ == CgroupVersion::kV1 && !cpuacct_dir_.empty()) {
    return std::atoll(fs_->read(cpuacct_dir_ + "/cpuacct.usage").c_str()) / 1000000;
  }
  if (version_ == CgroupVersion::kV2) return read_keyed(*fs_, cpu_dir_ + "/cpu.stat", "usage_usec") / 1000;
  return 0;
}

int64_t Cgroup::memory_bytes() const {
  if (memory_dir_.empty()) return 0;
  const char* file = version_ == CgroupVersion::kV1 ? "/memory.usage_in_bytes" : "/memory.current";
  return std::atoll(fs_->read(memory_dir_ + file).c_str());
}

std::vector<int> Cgroup::pids() const {
  std::set<int> all;
  for (const auto& f : procs_files_) {
    for (int p : read_pids(*fs_, f)) all.insert(p);
  }
  return {all.begin(), all.end()};
}

Status Cgroup::freeze(bool frozen) {
  if (version_ == CgroupVersion::kV1 && !freezer_dir_.empty()) {
    if (!fs_->write(freezer_dir_ + "/freezer.state", frozen ? "FROZEN" : "THAWED")) {
      return io_error("cannot write " + freezer_dir_ + "/freezer.state");
    }
    return Status::ok();
  }
  if (version_ == CgroupVersion::kV2) {
    std::string file = dirs_[0] + "/cgroup.freeze";
    if (!fs_->write(file, frozen ? "1" : "0")) return io_error("cannot write " + file + ": " + std::strerror(errno));
    // Freezing completes asynchronously (each task stops on its way back to user space): wait, a
    // bounded time, for cgroup.events to say "frozen 1", so that nothing runs once this returns.
    // A task stuck in the kernel can delay it; the freeze then completes later on its own.
    if (frozen) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (read_keyed(*fs_, dirs_[0] + "/cgroup.events", "frozen") != 1 &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    return Status::ok();
  }
  return unimplemented("no freezer cgroup on this host");
}

Status Cgroup::set_limits(const CgroupLimits& limits) {
  auto put = [this](const std::string& file, const std::string& value) -> Status {
    if (!fs_->write(file, value)) return io_error("cannot write " + value + " to " + file + ": " + std::strerror(errno));
    return Status::ok();
  };
  if (version_ == CgroupVersion::kV2) {
    const std::string& dir = dirs_[0];
    if (limits.memory_bytes > 0) {
      TIDAL_RETURN_IF_ERROR(put(dir + "/memory.max", std::to_string(limits.memory_bytes)));
      if (fs_->exists(dir + "/memory.swap.max")) TIDAL_RETURN_IF_ERROR(put(dir + "/memory.swap.max", "0"));
    }
    if (limits.pids > 0) TIDAL_RETURN_IF_ERROR(put(dir + "/pids.max", std::to_string(limits.pids)));
    if (limits.cpu_millis > 0 && fs_->exists(dir + "/cpu.max")) {
      TIDAL_RETURN_IF_ERROR(put(dir + "/cpu.max", std::to_string(limits.cpu_millis * 100) + " 100000"));
      TIDAL_RETURN_IF_ERROR(put(dir + "/cpu.weight", std::to_string(cpu_weight(limits.cpu_millis))));
    }
    return Status::ok();
  }
  if (version_ != CgroupVersion::kV1) return Status::ok();
  if (limits.memory_bytes > 0 && !memory_dir_.empty()) {
    // With swap accounting memsw must stay >= the memory limit: order the two writes accordingly.
    std::string mem = memory_dir_ + "/memory.limit_in_bytes", memsw = memory_dir_ + "/memory.memsw.limit_in_bytes";
    std::string value = std::to_string(limits.memory_bytes);
    if (memsw_ && std::atoll(fs_->read(memsw).c_str()) < limits.memory_bytes) {
      TIDAL_RETURN_IF_ERROR(put(memsw, value));
      TIDAL_RETURN_IF_ERROR(put(mem, value));
    } else {
      TIDAL_RETURN_IF_ERROR(put(mem, value));
      if (memsw_) TIDAL_RETURN_IF_ERROR(put(memsw, value));
    }
  }
  if (limits.pids > 0 && !pids_dir_.empty()) TIDAL_RETURN_IF_ERROR(put(pids_dir_ + "/pids.max", std::to_string(limits.pids)));
  if (limits.cpu_millis > 0 && !cpu_dir_.empty()) {
    TIDAL_RETURN_IF_ERROR(put(cpu_dir_ + "/cpu.cfs_period_us", "100000"));
    TIDAL_RETURN_IF_ERROR(put(cpu_dir_ + "/cpu.cfs_quota_us", std::to_string(limits.cpu_millis * 100)));
    TIDAL_RETURN_IF_ERROR(put(cpu_dir_ + "/cpu.shares", std::to_string(cpu_shares(limits.cpu_millis))));
  }
  return Status::ok();
}

Status Cgroup::kill_all() {
  if (procs_files_.empty()) return Status::ok();
  if (version_ == CgroupVersion::kV2 && fs_->write(dirs_[0] + "/cgroup.kill", "1")) {
    // cgroup.kill (Linux 5.14+) kills atomically; fall through to wait for the group to empty.
  } else {
    bool frozen = freeze(true).is_ok();
    for (int round = 0; round < 3; ++round) {
      for (int pid : pids()) fs_->kill(pid, SIGKILL);
    }
    if (frozen) (void)freeze(false);  // SIGKILLed tasks die once thawed
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<int> left = pids();
    if (left.empty()) return Status::ok();
    for (int pid : left) fs_->kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return internal_error("cgroup still has processes after SIGKILL");
}

Status Cgroup::remove() {
  Status status;
  for (const auto& dir : dirs_) {
    if (!remove_dir(*fs_, dir) && status.is_ok()) status = io_error("cannot remove cgroup " + dir + ": " + std::strerror(errno));
  }
  if (group_held_) host_->release_group(group_);
  group_held_ = false;
  return status;
}

Cgroup::~Cgroup() {
  if (group_held_) host_->release_group(group_);
}

Status Cgroup::regroup(const std::string& group, const CgroupLimits& limits) {
  if (!host_ || group == group_) return set_limits(limits);
  // The directories that move: those under a share group (v1 cpu and cpuacct; v2 the only one).
  std::vector<size_t> moving;  // indices into dirs_
  for (size_t i = 0; i < dirs_.size(); ++i) {
    if (version_ == CgroupVersion::kV2 || dirs_[i] == cpu_dir_ || dirs_[i] == cpuacct_dir_) moving.push_back(i);
  }
  auto new_dir_of = [&](const std::string& old_dir) {
    std::string parent = old_dir.substr(0, old_dir.rfind('/'));  // <base>/<old group>
    return parent.substr(0, parent.rfind('/')) + "/" + group + "/" + id_;
  };
  TIDAL_RETURN_IF_ERROR(host_->acquire_group(group));
  std::vector<std::string> old_dirs = dirs_;
  Cgroup moved;  // the new layout, written and filled before this one is changed
  moved.fs_ = fs_;
  moved.version_ = version_;
  moved.memsw_ = memsw_;
  moved.dirs_ = dirs_;
  moved.memory_dir_ = memory_dir_;
  moved.pids_dir_ = pids_dir_;
  moved.cpu_dir_ = cpu_dir_;
  moved.cpuacct_dir_ = cpuacct_dir_;
  moved.freezer_dir_ = freezer_dir_;
  for (size_t i : moving) {
    std::string to = new_dir_of(dirs_[i]);
    for (std::string* f : {&moved.memory_dir_, &moved.pids_dir_, &moved.cpu_dir_, &moved.cpuacct_dir_, &moved.freezer_dir_}) {
      if (*f == dirs_[i]) *f = to;
    }
    moved.dirs_[i] = to;
  }
  // Move every process of `from` into `to` (repeated: a process may fork meanwhile).
  auto move_all = [this](const std::string& from, const std::string& to) -> bool {
    for (int round = 0; round < 20; ++round) {
      std::vector<int> left = read_pids(*fs_, from + "/cgroup.procs");
      if (left.empty()) return true;
      for (int pid : left) {
        if (!fs_->write(to + "/cgroup.procs", std::to_string(pid)) && errno != ESRCH) return false;
      }
    }
    return read_pids(*fs_, from + "/cgroup.procs").empty();
  };
  std::string failed;
  size_t made = 0, filled = 0;
  for (; made < moving.size() && failed.empty(); ++made) {
    if (!fs_->mkdir(moved.dirs_[moving[made]])) failed = "mkdir " + moved.dirs_[moving[made]] + ": " + std::strerror(errno);
  }
  if (!failed.empty()) --made;
  Status st = failed.empty() ? moved.set_limits(limits) : Status::ok();
  if (!st.is_ok()) failed = st.message();
  for (; failed.empty() && filled < moving.size(); ++filled) {
    size_t i = moving[filled];
    if (!move_all(old_dirs[i], moved.dirs_[i])) failed = "move processes to " + moved.dirs_[i] + ": " + std::strerror(errno);
  }
  if (!failed.empty()) {  // put everything back
    for (size_t k = 0; k < filled; ++k) (void)move_all(moved.dirs_[moving[k]], old_dirs[moving[k]]);
    for (size_t k = 0; k < made; ++k) remove_dir(*fs_, moved.dirs_[moving[k]]);
    host_->release_group(group);
    return io_error("cgroup regroup of sandbox " + id_ + " under '" + group + "': " + failed);
  }
  for (size_t i : moving) remove_dir(*fs_, old_dirs[i]);
  dirs_ = moved.dirs_;
  procs_files_.clear();
  for (const auto& dir : dirs_) procs_files_.push_back(dir + "/cgroup.procs");
  memory_dir_ = moved.memory_dir_;
  pids_dir_ = moved.pids_dir_;
  cpu_dir_ = moved.cpu_dir_;
  cpuacct_dir_ = moved.cpuacct_dir_;
  freezer_dir_ = moved.freezer_dir_;
  if (group_held_) host_->release_group(group_);
  group_ = group;
  group_held_ = true;
  return Status::ok();
}

std::vector<std::string> CgroupHost::group_bases() const {
  if (version_ == CgroupVersion::kV2) return {v2_base_};
  std::vector<std::string> out;
  for (const auto& base : {cpu_base_, cpuacct_base_}) {
    if (!base.empty() && std::find(out.begin(), out.end(), base) == out.end()) out.push_back(base);
  }
  return out;
}

Status CgroupHost::acquire_group(const std::string& group) {
  std::lock_guard<std::mutex> lock(groups_mu_);
  if (group_refs_[group]++ > 0) return Status::ok();
  std::vector<std::string> made;
  for (const auto& base : group_bases()) {
    std::string dir = base + "/" + group;
    bool ok = make_dir(*fs_, dir);
    if (ok) made.push_back(dir);
    if (ok && version_ == CgroupVersion::kV2) ok = fs_->write(dir + "/cgroup.subtree_control", v2_controllers_);
    if (!ok) {
      Status s = io_error("cgroup share group " + dir + ": " + std::strerror(errno));
      for (const auto& d : made) remove_dir(*fs_, d, 1);
      group_refs_.erase(group);
      return s;
    }
  }
  return Status::ok();
}

void CgroupHost::release_group(const std::string& group) {
  std::lock_guard<std::mutex> lock(groups_mu_);
  auto it = group_refs_.find(group);
  if (it == group_refs_.end() || --it->second > 0) return;
  group_refs_.erase(it);
  group_retired_ms_[group] += live_group_cpu_ms(group);
  for (const auto& base : group_bases()) remove_dir(*fs_, base + "/" + group);
}

int64_t CgroupHost::live_group_cpu_ms(const std::string& group) const {
  if (version_ == CgroupVersion::kV1 && !cpuacct_base_.empty()) {
    return std::atoll(fs_->read(cpuacct_base_ + "/" + group + "/cpuacct.usage").c_str()) / 1000000;
  }
  if (version_ == CgroupVersion::kV2) return read_keyed(*fs_, v2_base_ + "/" + group + "/cpu.stat", "usage_usec") / 1000;
  return 0;
}

int64_t CgroupHost::group_cpu_ms(const std::string& group) const {
  std::lock_guard<std::mutex> lock(groups_mu_);
  int64_t ms = 0;
  if (auto it = group_retired_ms_.find(group); it != group_retired_ms_.end()) ms += it->second;
  if (group_refs_.count(group)) ms += live_group_cpu_ms(group);
  return ms;
}

void CgroupHost::forget_group(const std::string& group) {
  std::lock_guard<std::mutex> lock(groups_mu_);
  group_retired_ms_.erase(group);
}

size_t CgroupHost::n_groups() const {
  std::lock_guard<std::mutex> lock(groups_mu_);
  return group_refs_.size();
}

std::shared_ptr<CgroupHost> CgroupHost::detect(const std::string& base_name) {
  CgroupFs& fs = *CgroupFs::system();
  return detect_from(fs.read("/proc/self/mountinfo"), fs.read("/proc/self/cgroup"), base_name);
}

std::shared_ptr<CgroupHost> CgroupHost::detect_from(const std::string& mountinfo_text,
                                                    const std::string& self_cgroup_text,
                                                    const std::string& kBaseName, std::shared_ptr<CgroupFs> fs_ptr) {
  auto host = std::make_shared<CgroupHost>();
  if (fs_ptr) host->fs_ = std::move(fs_ptr);
  CgroupFs& fs = *host->fs_;
  // Own cgroup path per hierarchy: "N:controllers:/path".
  std::map<std::string, std::string> self_path;  // controller (or "" for v2) -> path
  {
    std::istringstream in(self_cgroup_text);
    std::string line;
    while (std::getline(in, line)) {
      size_t a = line.find(':'), b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
      if (controllers.empty()) self_path[""] = path;
      std::stringstream cs(controllers);
      std::string c;
      while (std::getline(cs, c, ',')) self_path[c] = path;
    }
  }
  // Mount points: mountinfo fields "id parent major:minor root mount_point options [optional...]
  // - fstype source superoptions". `root` is the directory of the hierarchy mounted there ("/",
  // or the container's own group when only that subtree is mounted).
  struct Mount {
    std::string point, root;
  };
  std::map<std::string, Mount> v1_mount;  // controller -> its hierarchy's mount
  Mount v2_mount;
  {
    std::istringstream in(mountinfo_text);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string id, parent, devno, root, mount_point, opts, field;
      ls >> id >> parent >> devno >> root >> mount_point >> opts;
      while (ls >> field && field != "-") {
      }
      std::string fstype, source, super_opts;
      ls >> fstype >> source >> super_opts;
      if (fstype == "cgroup2") {
        if (v2_mount.point.empty() || mount_point == "/sys/fs/cgroup") v2_mount = {mount_point, root};
      } else if (fstype == "cgroup") {
        std::stringstream os(super_opts);
        std::string o;
        while (std::getline(os, o, ',')) v1_mount[o] = {mount_point, root};
      }
    }
  }
  // The directory of our own group under a mount: our path relative to the mount's root.
  auto own_dir = [](const Mount& m, std::string path) {
    if (m.root != "/" && path.compare(0, m.root.size(), m.root) == 0 &&
        (path.size() == m.root.size() || path[m.root.size()] == '/')) {
      path = path.substr(m.root.size());
    }
    return m.point + (path == "/" ? "" : path);
  };
  auto base_for = [&](const std::string& controller) -> std::string {
    auto m = v1_mount.find(controller);
    auto p = self_path.find(controller);
    if (m == v1_mount.end() || p == self_path.end()) return {};
    std::string base = own_dir(m->second, p->second) + "/" + kBaseName;
    return make_dir(fs, base) ? base : std::string();
  };
  if (v1_mount.count("memory") || v1_mount.count("pids")) {
    host->memory_base_ = base_for("memory");
    host->pids_base_ = base_for("pids");
    host->cpu_base_ = base_for("cpu");
    host->cpuacct_base_ = base_for("cpuacct");
    host->freezer_base_ = base_for("freezer");
    std::vector<std::string> have;
    if (!host->memory_base_.empty()) have.push_back("memory");
    if (!host->pids_base_.empty()) have.push_back("pids");
    if (!host->cpu_base_.empty()) have.push_back("cpu");
    if (!host->cpuacct_base_.empty()) have.push_back("cpuacct");
    if (!host->freezer_base_.empty()) have.push_back("freezer");
    if (!have.empty()) {
      host->version_ = CgroupVersion::kV1;
      host->memsw_ = !host->memory_base_.empty() && fs.exists(host->memory_base_ + "/memory.memsw.limit_in_bytes");
      std::string list;
      for (const auto& h : have) list += (list.empty() ? "" : ", ") + h;
      host->description_ = "cgroup v1 (" + list + ")";
      if (host->memory_base_.empty() || host->pids_base_.empty()) {
        host->description_ += "; missing memory or pids: those limits are not enforced";
      }
      return host;
    }
    host->description_ = "none: cgroup v1 hierarchies are not writable";
  }
  if (!v2_mount.point.empty() && self_path.count("")) {
    std::string self = own_dir(v2_mount, self_path[""]);
    std::set<std::string> controllers = words(fs.read(self + "/cgroup.controllers"));
    std::string missing;
    for (const char* c : {"memory", "pids"}) {
      if (!controllers.count(c)) missing += std::string(missing.empty() ? "" : "+") + c;
    }
    if (!missing.empty()) {
      host->description_ = "none: cgroup v2 at " + self + " has no delegated " + missing + " controller" +
                           (missing.find('+') != std::string::npos ? "s" : "") +
                           " (cgroup.controllers lists only what the parent group delegates)";
      return host;
    }
    // The no-internal-process rule: controllers can be enabled for children only in a group with
    // no processes of its own. Create the base, then enable controllers in the daemon's group; if
    // the daemon's group holds processes, move the daemon into a leaf "tidal-daemon" first.
    std::string want = "+memory +pids";
    if (controllers.count("cpu")) want += " +cpu";
    if (!fs.write(self + "/cgroup.subtree_control", want)) {
      std::string leaf = self + "/tidal-daemon";
      if (!make_dir(fs, leaf) || !fs.write(leaf + "/cgroup.procs", std::to_string(getpid())) ||
          !fs.write(self + "/cgroup.subtree_control", want)) {
        host->description_ = "none: cannot enable controllers in " + self + "/cgroup.subtree_control: " +
                             std::strerror(errno) + " (other processes in the daemon's group?)";
        return host;
      }
    }
    std::string base = self + "/" + kBaseName;
    if (!make_dir(fs, base) || !fs.write(base + "/cgroup.subtree_control", want)) {
      host->description_ = "none: cannot create " + base + ": " + std::strerror(errno);
      return host;
    }
    host->version_ = CgroupVersion::kV2;
    host->v2_base_ = base;
    host->v2_controllers_ = want;
    host->description_ = "cgroup v2 (" + want + ") at " + base;
    return host;
  }
  if (host->description_.empty()) host->description_ = "none: no cgroup filesystem mounted";
  return host;
}

Expected<std::unique_ptr<Cgroup>> CgroupHost::create(const std::string& id, const CgroupLimits& limits,
                                                    const std::string& share_group) {
  auto group = std::make_unique<Cgroup>();
  group->fs_ = fs_;
  group->version_ = version_;
  if (version_ == CgroupVersion::kNone) return group;
  TIDAL_RETURN_IF_ERROR(acquire_group(share_group));
  // From here on the group's destructor releases the share group.
  group->host_ = shared_from_this();
  group->id_ = id;
  group->group_ = share_group;
  group->group_held_ = true;
  auto fail = [&](const std::string& what) -> Status {
    Status s = io_error("cgroup setup for sandbox " + id + ": " + what + ": " + std::strerror(errno));
    for (const auto& dir : group->dirs_) fs_->rmdir(dir);
    return s;
  };
  if (version_ == CgroupVersion::kV2) {
    std::string dir = v2_base_ + "/" + share_group + "/" + id;
    if (!fs_->mkdir(dir)) return fail("mkdir " + dir);
    group->dirs_.push_back(dir);
    group->memory_dir_ = group->pids_dir_ = group->cpu_dir_ = dir;
    group->procs_files_.push_back(dir + "/cgroup.procs");
    Status st = group->set_limits(limits);
    if (!st.is_ok()) {
      fs_->rmdir(dir);
      return st;
    }
    return group;
  }
  // v1: one directory per hierarchy; cpu and cpuacct one level deeper, under the share group.
  std::set<std::string> made;
  auto make = [&](const std::string& base, std::string* out, bool shared) -> bool {
    if (base.empty()) return true;
    std::string dir = base + "/" + (shared ? share_group + "/" : std::string()) + id;
    if (!made.count(dir)) {
      if (!fs_->mkdir(dir)) return false;
      made.insert(dir);
      group->dirs_.push_back(dir);
      group->procs_files_.push_back(dir + "/cgroup.procs");
    }
    *out = dir;
    return true;
  };
  if (!make(memory_base_, &group->memory_dir_, false) || !make(pids_base_, &group->pids_dir_, false) ||
      !make(cpu_base_, &group->cpu_dir_, true) || !make(cpuacct_base_, &group->cpuacct_dir_, true) ||
      !make(freezer_base_, &group->freezer_dir_, false)) {
    return fail("mkdir");
  }
  group->memsw_ = memsw_;
  Status st = group->set_limits(limits);
  if (!st.is_ok()) {
    for (const auto& dir : group->dirs_) fs_->rmdir(dir);
    return st;
  }
  return group;
}

void CgroupHost::remove_base() {
  for (const auto& base : {memory_base_, pids_base_, cpu_base_, cpuacct_base_, freezer_base_, v2_base_}) {
    if (!base.empty()) fs_->rmdir(base);
  }
}

int CgroupHost::cleanup_stale() {
  std::set<std::string> bases = {memory_base_, pids_base_, cpu_base_, cpuacct_base_, freezer_base_, v2_base_};
  bases.erase("");
  // Top-level entries: sandbox groups and share groups (which hold sandbox groups).
  std::set<std::string> names;
  for (const auto& base : bases) {
    for (const auto& dir : fs_->child_dirs(base)) names.insert(dir.substr(dir.rfind('/') + 1));
  }
  // Kill everything first (a share group's sandboxes also have flat groups elsewhere on v1), then
  // remove the trees bottom-up.
  for (const auto& name : names) {
    Cgroup group;
    group.fs_ = fs_;
    group.version_ = version_;
    for (const auto& base : bases) {
      std::string dir = base + "/" + name;
      if (!fs_->exists(dir)) continue;
      std::vector<std::string> tree;
      collect_tree(*fs_, dir, &tree);
      group.dirs_.push_back(dir);  // v2: cgroup.kill on the top directory kills the whole tree
      for (const auto& d : tree) group.procs_files_.push_back(d + "/cgroup.procs");
      if (base == freezer_base_) group.freezer_dir_ = dir;
    }
    (void)group.kill_all();
  }
  for (const auto& name : names) {
    for (const auto& base : bases) remove_tree(*fs_, base + "/" + name);
  }
  return static_cast<int>(names.size());
}

}  // namespace tidal::sandbox
