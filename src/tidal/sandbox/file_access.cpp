#include "tidal/sandbox/file_access.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace tidal::sandbox {

namespace {
constexpr uint64_t kResolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

Status errno_status(const std::string& what, const std::string& path, int err) {
  std::string msg = what + " " + path + ": " + std::strerror(err);
  if (err == ENOENT || err == ENOTDIR) return not_found(msg);
  if (err == EXDEV || err == ELOOP || err == EISDIR || err == ENOTEMPTY || err == EEXIST ||
      err == EINVAL || err == ENAMETOOLONG || err == EPERM || err == EACCES) {
    return invalid_argument(msg);
  }
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) return resource_exhausted(msg);
  return io_error(msg);
}

// "/a/b/c" -> ("/a/b", "c")
std::pair<std::string, std::string> split_parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  std::string parent = slash == 0 ? "/" : path.substr(0, slash);
  return {parent, path.substr(slash + 1)};
}

std::string strip_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

Status remove_children(int dirfd, const std::string& path) {
  int dup = ::dup(dirfd);
  DIR* d = fdopendir(dup);
  if (!d) {
    ::close(dup);
    return errno_status("opendir", path, errno);
  }
  Status status;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.emplace_back(e->d_name);
  }
  closedir(d);
  for (const auto& name : names) {
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      int child = openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) return errno_status("open", path + "/" + name, errno);
      status = remove_children(child, path + "/" + name);
      ::close(child);
      if (!status.is_ok()) return status;
      if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) return errno_status("rmdir", path + "/" + name, errno);
    } else if (unlinkat(dirfd, name.c_str(), 0) != 0) {
      return errno_status("unlink", path + "/" + name, errno);
    }
  }
  return status;
}
}  // namespace

Status FileAccess::check_path(const std::string& path) {
  if (path.empty()) return invalid_argument("path is empty");
  if (path[0] != '/') return invalid_argument("path must be absolute (start with '/'): " + path);
  if (path.size() > 4096) return invalid_argument("path is longer than 4096 bytes");
  if (path.find('\0') != std::string::npos) return invalid_argument("path contains a NUL byte");
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (path.compare(pos, next - pos, "..") == 0) return invalid_argument("path must not contain '..': " + path);
    pos = next + 1;
  }
  return Status::ok();
}

int FileAccess::open_in_root(const std::string& path, int flags, uint32_t mode) const {
  Fd root(::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (root.fd < 0) return -errno;
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = kResolve;
  std::string rel = path == "/" ? "." : path.substr(1);
  long fd = syscall(SYS_openat2, root.fd, rel.c_str(), &how, sizeof(how));
  return fd < 0 ? -errno : static_cast<int>(fd);
}

Status FileAccess::make_parents(const std::string& path) const {
  auto [parent, name] = split_parent(path);
  if (parent == "/") return Status::ok();
  int fd = open_in_root(parent, O_PATH | O_DIRECTORY);
  if (fd >= 0) {
    ::close(fd);
    return Status::ok();
  }
  if (fd != -ENOENT) return errno_status("open", parent, -fd);
  TIDAL_RETURN_IF_ERROR(make_parents(parent));
  auto [grand, dir_name] = split_parent(parent);
  Fd g(open_in_root(grand, O_PATH | O_DIRECTORY));
  if (g.fd < 0) return errno_status("open", grand, -g.fd);
  if (mkdirat(g.fd, dir_name.c_str(), 0755) != 0 && errno != EEXIST) return errno_status("mkdir", parent, errno);
  if (fchownat(g.fd, dir_name.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno_status("chown", parent, errno);
  }
  return Status::ok();
}

Status FileAccess::write(const std::string& raw_path, const std::string& data, uint32_t mode) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_path));
  std::string path = strip_trailing_slashes(raw_path);
  if (path == "/") return invalid_argument("cannot write to '/'");
  TIDAL_RETURN_IF_ERROR(make_parents(path));
  // O_NOFOLLOW: a symlink as the last component is refused rather than followed.
  Fd fd(open_in_root(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode & 07777));
  if (fd.fd < 0) return errno_status("open", path, -fd.fd);
  struct stat st;
  if (fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode)) return invalid_argument("not a regular file: " + path);
  if (fchown(fd.fd, uid_, gid_) != 0) return errno_status("chown", path, errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("write", path, errno);
    }
    off += static_cast<size_t>(n);
  }
  return Status::ok();
}

Status FileAccess::make_dir(const std::string& raw_path, uint32_t mode) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_path));
  std::string path = strip_trailing_slashes(raw_path);
  if (path == "/") return Status::ok();
  TIDAL_RETURN_IF_ERROR(make_parents(path));
  auto [parent, name] = split_parent(path);
  Fd p(open_in_root(parent, O_PATH | O_DIRECTORY));
  if (p.fd < 0) return errno_status("open", parent, -p.fd);
  if (mkdirat(p.fd, name.c_str(), mode & 07777) == 0) {
    if (fchownat(p.fd, name.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW) != 0) return errno_status("chown", path, errno);
    return Status::ok();
  }
  if (errno != EEXIST) return errno_status("mkdir", path, errno);
  Fd d(open_in_root(path, O_PATH | O_DIRECTORY));
  if (d.fd < 0) return invalid_argument("not a directory: " + path);
  return Status::ok();
}

Expected<std::string> FileAccess::read(const std::string& raw_path, int64_t max_bytes) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_path));
  std::string path = strip_trailing_slashes(raw_path);
  Fd fd(open_in_root(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  if (fd.fd < 0) return errno_status("open", path, -fd.fd);
  struct stat st;
  if (fstat(fd.fd, &st) != 0) return errno_status("stat", path, errno);
  if (!S_ISREG(st.st_mode)) return invalid_argument("not a regular file: " + path);
  if (st.st_size > max_bytes) {
    return invalid_argument(path + " is " + std::to_string(st.st_size) + " bytes, over the limit of " +
                            std::to_string(max_bytes));
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = ::read(fd.fd, out.data() + off, out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  out.resize(off);
  return out;
}

Status FileAccess::remove(const std::string& raw_path, bool recursive) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_path));
  std::string path = strip_trailing_slashes(raw_path);
  if (path == "/") return invalid_argument("cannot remove '/'");
  auto [parent, name] = split_parent(path);
  Fd dir(open_in_root(parent, O_RDONLY | O_DIRECTORY));
  if (dir.fd < 0) return errno_status("open", parent, -dir.fd);
  struct stat st;
  if (fstatat(dir.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno_status("stat", path, errno);
  if (S_ISDIR(st.st_mode)) {
    if (recursive) {
      Fd child(openat(dir.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (child.fd < 0) return errno_status("open", path, errno);
      TIDAL_RETURN_IF_ERROR(remove_children(child.fd, path));
    }
    if (unlinkat(dir.fd, name.c_str(), AT_REMOVEDIR) != 0) {
      if (errno == ENOTEMPTY) return invalid_argument("directory not empty (use recursive=1): " + path);
      return errno_status("rmdir", path, errno);
    }
    return Status::ok();
  }
  if (unlinkat(dir.fd, name.c_str(), 0) != 0) return errno_status("unlink", path, errno);
  return Status::ok();
}

Expected<std::vector<FileEntry>> FileAccess::list(const std::string& raw_path) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_path));
  std::string path = strip_trailing_slashes(raw_path);
  int fd = open_in_root(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return errno_status("open", path, -fd);
  DIR* d = fdopendir(fd);
  if (!d) {
    ::close(fd);
    return errno_status("opendir", path, errno);
  }
  std::vector<FileEntry> out;
  while (dirent* e = readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    FileEntry entry;
    entry.name = e->d_name;
    entry.type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "symlink" : "other";
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) continue;  // an overlay whiteout (deleted file)
    entry.size = st.st_size;
    entry.mode = st.st_mode & 07777;
    entry.mtime = st.st_mtim.tv_sec;
    out.push_back(std::move(entry));
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const FileEntry& a, const FileEntry& b) { return a.name < b.name; });
  return out;
}

Expected<std::string> FileAccess::type_of(const std::string& raw_path) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_path));
  std::string path = strip_trailing_slashes(raw_path);
  Fd fd(open_in_root(path, O_PATH | O_NOFOLLOW));
  if (fd.fd < 0) return errno_status("open", path, -fd.fd);
  struct stat st;
  if (fstat(fd.fd, &st) != 0) return errno_status("stat", path, errno);
  return std::string(S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "symlink" : "other");
}

}  // namespace tidal::sandbox
