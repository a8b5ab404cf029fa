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

Expected<Rootfs> Rootfs::create(const std::string& root, const std::string& id, int64_t disk_mb,
                                uint32_t uid, uint32_t gid, const std::string& copy_from_upper) {
  Rootfs r;
  r.dir_ = root + "/sandboxes/" + id;
  r.upper_ = r.dir_ + "/upper";
  r.merged_ = r.dir_ + "/merged";
  std::string work = r.dir_ + "/work";
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
  for (const auto& d : {r.upper_, work, r.merged_}) {
    if (::mkdir(d.c_str(), 0755) != 0) {
      Status s = io_error("mkdir " + d + ": " + errno_text());
      destroy_dir(r.dir_);
      return s;
    }
  }
  if (!copy_from_upper.empty()) {
    Status s = copy_tree(copy_from_upper, r.upper_);
    if (!s.is_ok()) {
      destroy_dir(r.dir_);
      return s;
    }
  }
  ::chown(r.upper_.c_str(), uid, gid);
  std::string lower = root + "/templates/host";
  std::string ovl = "lowerdir=" + lower + ",upperdir=" + r.upper_ + ",workdir=" + work;
  if (mount("overlay", r.merged_.c_str(), "overlay", MS_NOSUID | MS_NODEV, ovl.c_str()) != 0) {
    Status s = io_error("mount overlay on " + r.merged_ + ": " + errno_text());
    destroy_dir(r.dir_);
    return s;
  }
  return r;
}

void Rootfs::destroy_dir(const std::string& dir) {
  ::umount2((dir + "/merged").c_str(), MNT_DETACH);
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
    } else if (S_ISREG(st.st_mode)) {
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
    }
    if (!status.is_ok()) break;
    ::lchown(dst.c_str(), st.st_uid, st.st_gid);
    if (!S_ISLNK(st.st_mode)) ::chmod(dst.c_str(), st.st_mode & 07777);
    status = copy_xattrs(src, dst);
    if (!status.is_ok()) break;
  }
  closedir(d);
  if (status.is_ok()) status = copy_xattrs(from, to);
  return status;
}

}  // namespace tidal::sandbox
