#include "tidal/sandbox/rootfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace tidal::sandbox {

namespace fs = std::filesystem;

namespace {
std::string errno_text() { return std::strerror(errno); }

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) return io_error("cannot write " + path);
  return Status::ok();
}

unsigned long locked_flags(const std::string& path) {
  struct statvfs sv;
  if (statvfs(path.c_str(), &sv) != 0) return 0;
  unsigned long f = 0;
  if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

void chown_tree(const std::string& dir, uint32_t uid, uint32_t gid) {
  std::error_code ec;
  ::lchown(dir.c_str(), uid, gid);
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    ::lchown(it->path().c_str(), uid, gid);
  }
}

Status copy_xattrs(const std::string& from, const std::string& to) {
  char names[4096];
  ssize_t n = llistxattr(from.c_str(), names, sizeof(names));
  if (n < 0) return Status::ok();  // no xattr support: nothing to copy
  for (ssize_t off = 0; off < n; off += static_cast<ssize_t>(std::strlen(names + off)) + 1) {
    const char* name = names + off;
    char value[4096];
    ssize_t len = lgetxattr(from.c_str(), name, value, sizeof(value));
    if (len >= 0 && lsetxattr(to.c_str(), name, value, static_cast<size_t>(len), 0) != 0 &&
        errno != ENOTSUP) {
      return io_error("setxattr " + to + " " + name + ": " + errno_text());
    }
  }
  return Status::ok();
}
}  // namespace

Expected<std::vector<HostBind>> Rootfs::build_host_template(const std::string& root, uint32_t uid,
                                                            uint32_t gid) {
  std::string tmpl = root + "/templates/host";
  std::vector<HostBind> binds;
  binds.push_back({"/usr", locked_flags("/usr")});
  // Merged-/usr hosts have /bin -> usr/bin; older layouts have real directories to bind too.
  std::vector<std::pair<std::string, std::string>> links;
  for (const char* top : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string host = std::string("/") + top;
    struct stat st;
    if (lstat(host.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[256];
      ssize_t n = readlink(host.c_str(), target, sizeof(target) - 1);
      if (n > 0) links.emplace_back(top, std::string(target, static_cast<size_t>(n)));
    } else if (S_ISDIR(st.st_mode)) {
      binds.push_back({host, locked_flags(host)});
    }
  }
  if (fs::exists(tmpl + "/.tidal-template-ok")) return binds;

  std::error_code ec;
  std::string staging = tmpl + ".staging";
  fs::remove_all(staging, ec);
  for (const char* d : {"usr", "proc", "dev", "sys", "etc", "root", "workspace", "home", "run", "var/tmp",
                        "tmp", "opt"}) {
    fs::create_directories(staging + "/" + d, ec);
    if (ec) return io_error("cannot create " + staging + "/" + d + ": " + ec.message());
  }
  for (const auto& b : binds) fs::create_directories(staging + b.path, ec);
  for (const auto& [name, target] : links) {
    if (symlink(target.c_str(), (staging + "/" + name).c_str()) != 0) {
      return io_error("symlink " + name + ": " + errno_text());
    }
  }
  ::chmod((staging + "/tmp").c_str(), 01777);
  ::chmod((staging + "/var/tmp").c_str(), 01777);
  ::chmod((staging + "/root").c_str(), 0700);
  // Our own /etc: nothing of the host's users, hosts or secrets, only what programs need to run.
  TIDAL_RETURN_IF_ERROR(write_text(staging + "/etc/passwd",
                                   "root:x:0:0:root:/root:/bin/bash\n"
                                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"));
  TIDAL_RETURN_IF_ERROR(write_text(staging + "/etc/group", "root:x:0:\nnogroup:x:65534:\n"));
  TIDAL_RETURN_IF_ERROR(write_text(staging + "/etc/hosts", "127.0.0.1 localhost sandbox\n::1 localhost\n"));
  TIDAL_RETURN_IF_ERROR(write_text(staging + "/etc/hostname", "sandbox\n"));
  TIDAL_RETURN_IF_ERROR(write_text(staging + "/etc/resolv.conf", ""));
  TIDAL_RETURN_IF_ERROR(write_text(staging + "/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"));
  for (const char* f : {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime",
                        "bash.bashrc", "profile", "inputrc", "mime.types", "ssl"}) {
    std::string host = std::string("/etc/") + f;
    if (!fs::exists(fs::symlink_status(host))) continue;
    // Symlinks are copied as links (alternatives point into /usr, which the sandbox sees).
    fs::copy(host, staging + "/etc/" + f,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    ec.clear();
  }
  chown_tree(staging, uid, gid);
  TIDAL_RETURN_IF_ERROR(write_text(staging + "/.tidal-template-ok", "host\n"));
  fs::remove_all(tmpl, ec);
  fs::rename(staging, tmpl, ec);
  if (ec) return io_error("cannot install template " + tmpl + ": " + ec.message());
  return binds;
}

Expected<std::shared_ptr<Layer>> Layer::open(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("open layer " + dir + ": " + errno_text());
  std::shared_ptr<Layer> layer(new Layer());
  layer->fd_ = fd;
  layer->path_ = "/proc/self/fd/" + std::to_string(fd);
  return layer;
}

Layer::~Layer() {
  if (fd_ >= 0) ::close(fd_);
}

Status Rootfs::mount_overlay(const std::string& at, const LayerStack& lowers, const std::string& upper,
                             const std::string& work) const {
  std::string lower;
  for (const auto& layer : lowers) lower += layer->path() + ":";
  lower += template_lower_;
  std::string ovl = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work;
  if (ovl.size() >= 4000) return io_error("overlay options too long (" + std::to_string(ovl.size()) + " bytes)");
  if (mount("overlay", at.c_str(), "overlay", MS_NOSUID | MS_NODEV, ovl.c_str()) != 0) {
    return io_error("mount overlay on " + at + ": " + errno_text());
  }
  return Status::ok();
}

Expected<Rootfs> Rootfs::create(const std::string& root, const std::string& id, int64_t disk_mb,
                                uint32_t uid, uint32_t gid, const std::string& template_lower,
                                const LayerStack& lowers, const std::vector<std::string>& copy_from) {
  Rootfs r;
  r.root_ = root;
  r.template_lower_ = template_lower;
  r.uid_ = uid;
  r.gid_ = gid;
  r.dir_ = root + "/sandboxes/" + id;
  r.upper_ = r.dir_ + "/upper.0";
  r.work_ = r.dir_ + "/work.0";
  r.merged_ = r.dir_ + "/merged";
  r.next_ = r.dir_ + "/next";
  r.lowers_ = lowers;
  std::error_code ec;
  fs::create_directories(r.dir_, ec);
  if (ec) return io_error("cannot create " + r.dir_ + ": " + ec.message());
  std::string opts = "size=" + std::to_string(disk_mb) + "m,mode=0700";
  if (mount("tidal-sandbox", r.dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
    Status s = io_error("mount tmpfs on " + r.dir_ + ": " + errno_text());
    destroy_dir(r.dir_);
    return s;
  }
  // The sandbox's init (root of its user namespace = uid on the host) must traverse this directory
  // to reach merged/; nobody else but host root may.
  if (::chown(r.dir_.c_str(), uid, gid) != 0) {
    Status s = io_error("chown " + r.dir_ + ": " + errno_text());
    destroy_dir(r.dir_);
    return s;
  }
  for (const auto& d : {r.upper_, r.work_, r.merged_}) {
    if (::mkdir(d.c_str(), 0755) != 0) {
      Status s = io_error("mkdir " + d + ": " + errno_text());
      destroy_dir(r.dir_);
      return s;
    }
  }
  if (!copy_from.empty()) {
    Status s = merge_layers(copy_from, r.upper_);
    if (!s.is_ok()) {
      destroy_dir(r.dir_);
      return s;
    }
  }
  ::chown(r.upper_.c_str(), uid, gid);
  Status s = r.mount_overlay(r.merged_, lowers, r.upper_, r.work_);
  if (!s.is_ok()) {
    destroy_dir(r.dir_);
    return s;
  }
  return r;
}

bool Rootfs::upper_empty() const {
  DIR* d = opendir(upper_.c_str());
  if (!d) return false;
  bool empty = true;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) {
      empty = false;
      break;
    }
  }
  closedir(d);
  return empty;
}

namespace {
// Moves every entry of directory `from` into directory `to` (renames within one filesystem).
Status move_entries(const std::string& from, const std::string& to) {
  DIR* d = opendir(from.c_str());
  if (!d) return io_error("opendir " + from + ": " + errno_text());
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.emplace_back(e->d_name);
  }
  closedir(d);
  for (const auto& name : names) {
    if (::rename((from + "/" + name).c_str(), (to + "/" + name).c_str()) != 0) {
      return io_error("rename " + from + "/" + name + ": " + errno_text());
    }
  }
  return Status::ok();
}
}  // namespace

Expected<LayerStack> Rootfs::freeze_stack() {
  if (upper_empty()) return lowers_;
  // The frozen layer is a new directory that takes over the upper's entries (renames, no copy):
  // had we stacked upper.N itself, overlayfs would see a lower layer that is still the upper of
  // the mount being replaced (a kernel warning per fork, EBUSY with index=on).
  frozen_ = dir_ + "/layer." + std::to_string(generation_);
  if (::mkdir(frozen_.c_str(), 0755) != 0) {
    Status s = io_error("mkdir " + frozen_ + ": " + errno_text());
    frozen_.clear();
    return s;
  }
  ::chown(frozen_.c_str(), uid_, gid_);
  Status moved = move_entries(upper_, frozen_);
  Expected<std::shared_ptr<Layer>> top = moved.is_ok() ? Layer::open(frozen_) : Expected<std::shared_ptr<Layer>>(moved);
  if (!top) {
    thaw();
    return top.status();
  }
  LayerStack stack{*top};
  stack.insert(stack.end(), lowers_.begin(), lowers_.end());
  if (stack.size() <= kMaxLayers) return stack;
  // Too deep: one flattened copy of the whole stack (in this sandbox's tmpfs).
  std::string flat = dir_ + "/flat." + std::to_string(generation_);
  std::error_code ec;
  fs::remove_all(flat, ec);
  std::vector<std::string> paths;
  for (const auto& layer : stack) paths.push_back(layer->path());
  Status s = ::mkdir(flat.c_str(), 0755) == 0 ? merge_layers(paths, flat) : io_error("mkdir " + flat + ": " + errno_text());
  Expected<std::shared_ptr<Layer>> flat_layer = s.is_ok() ? Layer::open(flat) : Expected<std::shared_ptr<Layer>>(s);
  if (!flat_layer) {
    fs::remove_all(flat, ec);
    thaw();
    return flat_layer.status();
  }
  ::chown(flat.c_str(), uid_, gid_);
  return LayerStack{*flat_layer};
}

void Rootfs::thaw() {
  if (frozen_.empty()) return;
  (void)move_entries(frozen_, upper_);
  ::rmdir(frozen_.c_str());
  frozen_.clear();
}

Status Rootfs::prepare_remount(const LayerStack& stack) {
  int gen = generation_ + 1;
  next_upper_ = dir_ + "/upper." + std::to_string(gen);
  next_work_ = dir_ + "/work." + std::to_string(gen);
  for (const auto& d : {next_upper_, next_work_}) {
    if (::mkdir(d.c_str(), 0755) != 0) {
      Status s = io_error("mkdir " + d + ": " + errno_text());
      abort_remount();
      return s;
    }
  }
  ::chown(next_upper_.c_str(), uid_, gid_);
  if (::mkdir(next_.c_str(), 0755) != 0 && errno != EEXIST) {
    Status s = io_error("mkdir " + next_ + ": " + errno_text());
    abort_remount();
    return s;
  }
  Status s = mount_overlay(next_, stack, next_upper_, next_work_);
  if (!s.is_ok()) {
    abort_remount();
    return s;
  }
  next_lowers_ = stack;
  return Status::ok();
}

void Rootfs::finish_remount() {
  ::umount2(merged_.c_str(), MNT_DETACH);
  if (mount(next_.c_str(), merged_.c_str(), nullptr, MS_MOVE, nullptr) != 0) {
    // Should not happen (both are ours); the files API then fails until destroy, the sandbox's
    // own root (already swapped) is unaffected.
    ::umount2(next_.c_str(), MNT_DETACH);
  }
  ++generation_;
  upper_ = next_upper_;
  work_ = next_work_;
  lowers_ = std::move(next_lowers_);
  next_lowers_.clear();
  frozen_.clear();
}

void Rootfs::abort_remount() {
  ::umount2(next_.c_str(), MNT_DETACH);
  std::error_code ec;
  if (!next_upper_.empty()) fs::remove_all(next_upper_, ec);
  if (!next_work_.empty()) fs::remove_all(next_work_, ec);
  next_lowers_.clear();
}

void Rootfs::destroy_dir(const std::string& dir) {
  ::umount2((dir + "/merged").c_str(), MNT_DETACH);
  ::umount2((dir + "/next").c_str(), MNT_DETACH);
  ::umount2(dir.c_str(), MNT_DETACH);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

int Rootfs::cleanup_stale(const std::string& root) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(root + "/sandboxes", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    destroy_dir(it->path().string());
    ++n;
  }
  return n;
}

namespace {

// Copies one non-directory entry (regular file, symlink, device/whiteout, FIFO) with its owner,
// mode and xattrs.
Status copy_entry(const std::string& src, const std::string& dst, const struct stat& st) {
  Status status;
  if (S_ISREG(st.st_mode)) {
    int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
    if (in < 0 || out < 0) {
      status = io_error("copy " + src + ": " + errno_text());
    } else {
      // copy_file_range refuses some cross-filesystem pairs (EXDEV): fall back to read/write.
      off_t left = st.st_size;
      while (left > 0) {
        ssize_t n = copy_file_range(in, nullptr, out, nullptr, static_cast<size_t>(left), 0);
        if (n <= 0) break;
        left -= n;
      }
      char buf[65536];
      while (left > 0) {
        ssize_t n = ::read(in, buf, sizeof(buf));
        if (n <= 0 || ::write(out, buf, static_cast<size_t>(n)) != n) {
          status = io_error("copy " + src + ": " + errno_text());
          break;
        }
        left -= n;
      }
    }
    if (in >= 0) ::close(in);
    if (out >= 0) ::close(out);
  } else if (S_ISLNK(st.st_mode)) {
    char target[4096];
    ssize_t n = readlink(src.c_str(), target, sizeof(target) - 1);
    if (n >= 0) {
      target[n] = 0;
      if (symlink(target, dst.c_str()) != 0) status = io_error("symlink " + dst + ": " + errno_text());
    }
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
    // Overlay whiteouts are 0/0 character devices; copy them as they are.
    if (mknod(dst.c_str(), st.st_mode, st.st_rdev) != 0) status = io_error("mknod " + dst + ": " + errno_text());
  } else {
    return Status::ok();  // sockets: nothing to copy
  }
  if (!status.is_ok()) return status;
  ::lchown(dst.c_str(), st.st_uid, st.st_gid);
  if (!S_ISLNK(st.st_mode)) ::chmod(dst.c_str(), st.st_mode & 07777);
  return copy_xattrs(src, dst);
}

bool is_opaque(const std::string& dir) {
  char v[4];
  ssize_t n = lgetxattr(dir.c_str(), "trusted.overlay.opaque", v, sizeof(v));
  return n == 1 && v[0] == 'y';
}

// Applies one layer `from` on top of the merged result so far in `to`.
Status apply_layer(const std::string& from, const std::string& to) {
  DIR* d = opendir(from.c_str());
  if (!d) return io_error("opendir " + from + ": " + errno_text());
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.emplace_back(e->d_name);
  }
  closedir(d);
  for (const auto& name : names) {
    std::string src = from + "/" + name, dst = to + "/" + name;
    struct stat st, old;
    if (lstat(src.c_str(), &st) != 0) continue;
    bool had = lstat(dst.c_str(), &old) == 0;
    bool had_dir = had && S_ISDIR(old.st_mode);
    std::error_code ec;
    if (S_ISDIR(st.st_mode)) {
      bool opaque = is_opaque(src);
      if (had_dir && !opaque) {
        TIDAL_RETURN_IF_ERROR(apply_layer(src, dst));  // merge into the lower directory
        ::lchown(dst.c_str(), st.st_uid, st.st_gid);
        ::chmod(dst.c_str(), st.st_mode & 07777);
        continue;
      }
      if (had) fs::remove_all(dst, ec);
      if (::mkdir(dst.c_str(), st.st_mode & 07777) != 0) return io_error("mkdir " + dst + ": " + errno_text());
      ::lchown(dst.c_str(), st.st_uid, st.st_gid);
      ::chmod(dst.c_str(), st.st_mode & 07777);
      TIDAL_RETURN_IF_ERROR(copy_xattrs(src, dst));
      // A directory over a whiteout or a file of a lower layer hid everything below it: keep
      // hiding the template's directory of that name.
      if (had && !opaque && lsetxattr(dst.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
        return io_error("set opaque " + dst + ": " + errno_text());
      }
      TIDAL_RETURN_IF_ERROR(apply_layer(src, dst));
    } else {
      if (had) fs::remove_all(dst, ec);
      TIDAL_RETURN_IF_ERROR(copy_entry(src, dst, st));
    }
  }
  return Status::ok();
}

}  // namespace

Status copy_tree(const std::string& from, const std::string& to) {
  DIR* d = opendir(from.c_str());
  if (!d) return io_error("opendir " + from + ": " + errno_text());
  Status status;
  while (dirent* e = readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    std::string src = from + "/" + e->d_name, dst = to + "/" + e->d_name;
    struct stat st;
    if (lstat(src.c_str(), &st) != 0) continue;  // vanished meanwhile
    if (S_ISDIR(st.st_mode)) {
      if (::mkdir(dst.c_str(), st.st_mode & 07777) != 0 && errno != EEXIST) {
        status = io_error("mkdir " + dst + ": " + errno_text());
        break;
      }
      status = copy_tree(src, dst);
      if (!status.is_ok()) break;
      ::lchown(dst.c_str(), st.st_uid, st.st_gid);
      ::chmod(dst.c_str(), st.st_mode & 07777);
      status = copy_xattrs(src, dst);
    } else {
      status = copy_entry(src, dst, st);
    }
    if (!status.is_ok()) break;
  }
  closedir(d);
  if (status.is_ok()) status = copy_xattrs(from, to);
  return status;
}

Status merge_layers(const std::vector<std::string>& layers, const std::string& to) {
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) TIDAL_RETURN_IF_ERROR(apply_layer(*it, to));
  return Status::ok();
}

}  // namespace tidal::sandbox
