// FileAccess::extract_tar / create_tar: tar upload and download with libarchive.
//
// Upload runs in two passes over the (in-memory) archive: the first reads only the headers and
// refuses the whole archive on the first hostile or oversized entry, so nothing is written for a
// bad archive; the second extracts. Every file operation of the second pass is relative to a
// descriptor of the target directory and resolved with openat2(RESOLVE_BENEATH), so no name, link
// or symlink (ours or one the sandbox planted) can make it write outside that directory.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "tidal/sandbox/file_access.h"

namespace tidal::sandbox {

namespace {

constexpr uint64_t kBeneath = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
constexpr uint32_t kIdCount = 65536;  // ids mapped into a sandbox (see InitConfig::id_count)

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
};

struct ArchiveReader {
  archive* a = archive_read_new();
  ~ArchiveReader() { archive_read_free(a); }
};
struct ArchiveWriter {
  archive* a = archive_write_new();
  ~ArchiveWriter() { archive_write_free(a); }
};

std::string errno_text(int err) { return std::strerror(err); }

// libarchive's last error message (it may have none: NULL).
std::string error_text(archive* a) {
  const char* e = archive_error_string(a);
  return e ? e : "unknown libarchive error";
}

Status entry_error(const std::string& name, const std::string& why) {
  return invalid_argument("archive entry '" + name + "': " + why);
}

// openat2 relative to `dirfd`, never leaving it. Returns fd or -errno.
int open_beneath(int dirfd, const std::string& rel, int flags, mode_t mode = 0) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = kBeneath;
  long fd = syscall(SYS_openat2, dirfd, rel.empty() ? "." : rel.c_str(), &how, sizeof(how));
  return fd < 0 ? -errno : static_cast<int>(fd);
}

// Normalises an entry name: strips leading "./" and "/" duplicates, "." components and trailing
// slashes. Fails for absolute names, '..' components, NUL bytes and over-long names. "" is the
// target directory itself.
Expected<std::string> clean_name(const char* raw) {
  if (!raw) return invalid_argument("archive entry without a name");
  std::string name(raw);
  if (name.size() > 4096) return entry_error(name.substr(0, 64) + "...", "name longer than 4096 bytes");
  if (!name.empty() && name[0] == '/') return entry_error(name, "absolute names are not allowed");
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t next = name.find('/', pos);
    if (next == std::string::npos) next = name.size();
    std::string part = name.substr(pos, next - pos);
    pos = next + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return entry_error(name, "'..' components are not allowed");
    out += (out.empty() ? "" : "/") + part;
  }
  return out;
}

// True when `target` (a symlink's content) placed at entry `name` resolves lexically inside the
// extraction directory.
bool symlink_stays_inside(const std::string& name, const std::string& target) {
  if (target.empty() || target[0] == '/') return false;
  int depth = 0;  // components of the link's directory, below the root of the extraction
  for (char c : name) depth += c == '/';
  size_t pos = 0;
  while (pos <= target.size()) {
    size_t next = target.find('/', pos);
    if (next == std::string::npos) next = target.size();
    std::string part = target.substr(pos, next - pos);
    pos = next + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (--depth < 0) return false;
    } else {
      ++depth;
    }
  }
  return true;
}

std::pair<std::string, std::string> split(const std::string& rel) {
  size_t slash = rel.find_last_of('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

Status open_archive(ArchiveReader& r, std::string_view data) {
  archive_read_support_filter_gzip(r.a);
  archive_read_support_filter_none(r.a);
  archive_read_support_format_tar(r.a);  // ustar, pax, GNU tar
  if (archive_read_open_memory(r.a, data.data(), data.size()) != ARCHIVE_OK) {
    return invalid_argument(std::string("not a tar archive: ") + error_text(r.a));
  }
  return Status::ok();
}

struct Checked {
  std::string name;
  mode_t type = 0;
};

// Pass 1: headers only.
Status check_entry(archive_entry* e, const ArchiveLimits& limits, ArchiveStats* totals, Checked* out) {
  TIDAL_ASSIGN_OR_RETURN(out->name, clean_name(archive_entry_pathname(e)));
  const std::string& name = out->name;
  mode_t mode = archive_entry_mode(e);
  const char* hardlink = archive_entry_hardlink(e);
  out->type = hardlink ? 0 : (mode & S_IFMT);
  if (mode & (S_ISUID | S_ISGID)) return entry_error(name, "setuid/setgid bits are not allowed");
  if (hardlink) {
    auto target = clean_name(hardlink);
    if (!target) return entry_error(name, "hard link target: " + target.status().message());
    if (target->empty()) return entry_error(name, "hard link to the target directory");
  } else if (out->type == S_IFLNK) {
    const char* target = archive_entry_symlink(e);
    if (!target || !symlink_stays_inside(name, target)) {
      return entry_error(name, std::string("symlink target '") + (target ? target : "") +
                                   "' is absolute or leaves the target directory");
    }
  } else if (out->type == S_IFCHR || out->type == S_IFBLK) {
    return entry_error(name, "device nodes are not allowed");
  } else if (out->type == S_IFIFO || out->type == S_IFSOCK) {
    return entry_error(name, "FIFOs and sockets are not allowed");
  } else if (out->type != S_IFREG && out->type != S_IFDIR) {
    return entry_error(name, "unsupported entry type");
  }
  if (name.empty() && out->type != S_IFDIR) return entry_error(name, "only a directory may name the target itself");
  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
  if (size < 0) return entry_error(name, "negative size");
  totals->bytes += out->type == S_IFREG ? size : 0;
  if (++totals->entries > limits.max_entries) {
    return invalid_argument("archive has more than " + std::to_string(limits.max_entries) + " entries");
  }
  if (totals->bytes > limits.max_bytes) {
    return resource_exhausted("archive unpacks to more than " + std::to_string(limits.max_bytes) +
                              " bytes (the sandbox's disk_mb)");
  }
  return Status::ok();
}

Status errno_status(const std::string& what, const std::string& name, int err) {
  std::string msg = "archive entry '" + name + "': " + what + ": " + errno_text(err);
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) return resource_exhausted(msg);
  if (err == EXDEV || err == ELOOP || err == ENOTDIR || err == EISDIR || err == EEXIST || err == ENOTEMPTY ||
      err == EPERM || err == EACCES) {
    return invalid_argument(msg);
  }
  return io_error(msg);
}

class Extractor {
 public:
  Extractor(int root, uint32_t uid, uint32_t gid) : root_(root), uid_(uid), gid_(gid) {}

  // The directory `rel` (created with its parents when missing), opened beneath the root.
  Expected<Fd> dir(const std::string& rel, const std::string& entry) {
    if (rel.empty()) return Fd(::dup(root_));
    Fd fd(open_beneath(root_, rel, O_PATH | O_DIRECTORY));
    if (fd.fd >= 0) return fd;
    if (fd.fd != -ENOENT) return errno_status("open " + rel, entry, -fd.fd);
    auto [parent, name] = split(rel);
    TIDAL_ASSIGN_OR_RETURN(Fd p, dir(parent, entry));
    if (mkdirat(p.fd, name.c_str(), 0755) != 0 && errno != EEXIST) return errno_status("mkdir " + rel, entry, errno);
    if (fchownat(p.fd, name.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW) != 0) {
      return errno_status("chown " + rel, entry, errno);
    }
    Fd again(open_beneath(root_, rel, O_PATH | O_DIRECTORY));
    if (again.fd < 0) return errno_status("open " + rel, entry, -again.fd);
    return again;
  }

  // Removes a non-directory at parent/name so that it can be replaced (like tar does).
  Status clear(int parent, const std::string& name, const std::string& entry) {
    struct stat st;
    if (fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::ok();
    if (S_ISDIR(st.st_mode)) return entry_error(entry, "a directory of that name exists");
    if (unlinkat(parent, name.c_str(), 0) != 0) return errno_status("unlink", entry, errno);
    return Status::ok();
  }

  Status extract(archive* a, archive_entry* e, const Checked& c, ArchiveStats* stats) {
    const std::string& rel = c.name;
    mode_t perm = archive_entry_perm(e) & 01777;
    if (c.type == S_IFDIR) {
      TIDAL_ASSIGN_OR_RETURN(Fd d, dir(rel, rel));
      if (!rel.empty()) {
        Fd real(open_beneath(root_, rel, O_RDONLY | O_DIRECTORY));
        if (real.fd < 0 || fchmod(real.fd, perm) != 0) return errno_status("chmod", rel, real.fd < 0 ? -real.fd : errno);
      }
      return Status::ok();
    }
    auto [parent_rel, name] = split(rel);
    TIDAL_ASSIGN_OR_RETURN(Fd parent, dir(parent_rel, rel));
    TIDAL_RETURN_IF_ERROR(clear(parent.fd, name, rel));
    if (c.type == 0) {  // hard link
      TIDAL_ASSIGN_OR_RETURN(std::string target, clean_name(archive_entry_hardlink(e)));
      Fd src(open_beneath(root_, target, O_PATH | O_NOFOLLOW));
      if (src.fd < 0) return errno_status("hard link target '" + target + "'", rel, -src.fd);
      struct stat st;
      if (fstat(src.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        return entry_error(rel, "hard link target '" + target + "' is not a regular file");
      }
      // linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the /proc/self/fd path does not.
      std::string proc = "/proc/self/fd/" + std::to_string(src.fd);
      if (linkat(AT_FDCWD, proc.c_str(), parent.fd, name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        return errno_status("link", rel, errno);
      }
      ++stats->entries;
      return Status::ok();
    }
    if (c.type == S_IFLNK) {
      if (symlinkat(archive_entry_symlink(e), parent.fd, name.c_str()) != 0) return errno_status("symlink", rel, errno);
      if (fchownat(parent.fd, name.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW) != 0) return errno_status("chown", rel, errno);
      ++stats->entries;
      return Status::ok();
    }
    Fd out(open_beneath(parent.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    if (out.fd < 0) return errno_status("create", rel, -out.fd);
    if (fchown(out.fd, uid_, gid_) != 0) return errno_status("chown", rel, errno);
    const void* buf;
    size_t len;
    la_int64_t offset;
    int64_t written = 0;
    while (true) {
      int rc = archive_read_data_block(a, &buf, &len, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK) return entry_error(rel, std::string("corrupt data: ") + error_text(a));
      if (offset != written && lseek(out.fd, offset, SEEK_SET) < 0) return errno_status("seek", rel, errno);
      written = offset;
      const char* p = static_cast<const char*>(buf);
      while (len > 0) {
        ssize_t n = ::write(out.fd, p, len);
        if (n < 0) {
          if (errno == EINTR) continue;
          return errno_status("write", rel, errno);
        }
        p += n;
        len -= static_cast<size_t>(n);
        written += n;
        stats->bytes += n;
      }
    }
    if (archive_entry_size_is_set(e) && ftruncate(out.fd, archive_entry_size(e)) != 0) {
      return errno_status("truncate", rel, errno);  // sparse tail
    }
    if (fchmod(out.fd, perm & 0777) != 0) return errno_status("chmod", rel, errno);
    if (archive_entry_mtime_is_set(e)) {
      timespec times[2] = {{0, UTIME_OMIT}, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
      (void)futimens(out.fd, times);
    }
    ++stats->entries;
    return Status::ok();
  }

 private:
  int root_;
  uint32_t uid_, gid_;
};

}  // namespace

Expected<ArchiveStats> FileAccess::extract_tar(const std::string& raw_dir, std::string_view tar,
                                               const ArchiveLimits& limits) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_dir));
  {
    ArchiveReader r;
    TIDAL_RETURN_IF_ERROR(open_archive(r, tar));
    ArchiveStats totals;
    archive_entry* e;
    int rc;
    while ((rc = archive_read_next_header(r.a, &e)) == ARCHIVE_OK) {
      Checked c;
      TIDAL_RETURN_IF_ERROR(check_entry(e, limits, &totals, &c));
      archive_read_data_skip(r.a);
    }
    if (rc != ARCHIVE_EOF) return invalid_argument(std::string("corrupt tar archive: ") + error_text(r.a));
  }
  std::string dir = raw_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  TIDAL_RETURN_IF_ERROR(make_dir(dir));
  int root = open_in_root(dir, O_RDONLY | O_DIRECTORY);
  if (root < 0) return invalid_argument("cannot open target directory " + dir + ": " + errno_text(-root));
  Fd root_fd(root);
  Extractor x(root, uid_, gid_);
  ArchiveReader r;
  TIDAL_RETURN_IF_ERROR(open_archive(r, tar));
  ArchiveStats stats;
  ArchiveStats totals;
  archive_entry* e;
  int rc;
  while ((rc = archive_read_next_header(r.a, &e)) == ARCHIVE_OK) {
    Checked c;
    TIDAL_RETURN_IF_ERROR(check_entry(e, limits, &totals, &c));
    TIDAL_RETURN_IF_ERROR(x.extract(r.a, e, c, &stats));
  }
  if (rc != ARCHIVE_EOF) return invalid_argument(std::string("corrupt tar archive: ") + error_text(r.a));
  return stats;
}

namespace {

struct TarOut {
  std::string data;
  int64_t max_bytes = 0;
  int64_t file_bytes = 0;
  ArchiveStats stats;
  uint32_t uid = 0, gid = 0;
};

la_ssize_t write_cb(archive*, void* ctx, const void* buf, size_t len) {
  static_cast<TarOut*>(ctx)->data.append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

int64_t inner_id(uint32_t host, uint32_t base) { return host >= base && host - base < kIdCount ? host - base : 0; }

Status add_tree(archive* a, int dirfd, const std::string& prefix, TarOut* out) {
  int dup = ::dup(dirfd);
  DIR* d = fdopendir(dup);
  if (!d) {
    ::close(dup);
    return io_error("opendir " + prefix + ": " + errno_text(errno));
  }
  std::vector<std::string> names;
  while (dirent* ent = readdir(d)) {
    if (std::strcmp(ent->d_name, ".") && std::strcmp(ent->d_name, "..")) names.emplace_back(ent->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  for (const auto& name : names) {
    std::string rel = prefix.empty() ? name : prefix + "/" + name;
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) continue;
    archive_entry_clear(e.get());
    archive_entry_set_pathname(e.get(), rel.c_str());
    archive_entry_set_mode(e.get(), st.st_mode & (S_IFMT | 01777));
    archive_entry_set_uid(e.get(), inner_id(st.st_uid, out->uid));
    archive_entry_set_gid(e.get(), inner_id(st.st_gid, out->gid));
    archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    Fd fd;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = readlinkat(dirfd, name.c_str(), target, sizeof(target) - 1);
      if (n < 0) continue;
      target[n] = 0;
      archive_entry_set_symlink(e.get(), target);
      archive_entry_set_size(e.get(), 0);
    } else if (S_ISREG(st.st_mode)) {
      fd = Fd(openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
      if (fd.fd < 0) continue;
      if (fstat(fd.fd, &st) != 0) continue;
      archive_entry_set_size(e.get(), st.st_size);
      out->file_bytes += st.st_size;
      if (out->file_bytes > out->max_bytes) {
        return resource_exhausted("the directory holds more than " + std::to_string(out->max_bytes) +
                                  " bytes; download smaller subdirectories");
      }
    } else {
      archive_entry_set_size(e.get(), 0);
    }
    if (archive_write_header(a, e.get()) != ARCHIVE_OK) {
      return io_error("tar header for " + rel + ": " + error_text(a));
    }
    ++out->stats.entries;
    if (fd.fd >= 0) {
      char buf[65536];
      int64_t left = st.st_size;
      while (left > 0) {
        ssize_t n = ::read(fd.fd, buf, static_cast<size_t>(std::min<int64_t>(left, sizeof(buf))));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          std::memset(buf, 0, sizeof(buf));  // shrank meanwhile: pad to the size in the header
          n = static_cast<ssize_t>(std::min<int64_t>(left, sizeof(buf)));
        }
        if (archive_write_data(a, buf, static_cast<size_t>(n)) < 0) {
          return io_error("tar data for " + rel + ": " + error_text(a));
        }
        left -= n;
        out->stats.bytes += n;
      }
    }
    if (S_ISDIR(st.st_mode)) {
      Fd child(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (child.fd < 0) continue;
      TIDAL_RETURN_IF_ERROR(add_tree(a, child.fd, rel, out));
    }
  }
  return Status::ok();
}

}  // namespace

Expected<std::string> FileAccess::create_tar(const std::string& raw_dir, bool gzip, int64_t max_bytes,
                                             ArchiveStats* stats) const {
  TIDAL_RETURN_IF_ERROR(check_path(raw_dir));
  int fd = open_in_root(raw_dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) {
    int err = -fd;
    std::string msg = "open " + raw_dir + ": " + errno_text(err);
    if (err == ENOENT) return not_found(msg);
    return invalid_argument(msg);
  }
  Fd dir(fd);
  TarOut out;
  out.max_bytes = max_bytes;
  out.uid = uid_;
  out.gid = gid_;
  ArchiveWriter w;
  archive_write_set_format_pax_restricted(w.a);  // ustar, with pax headers only where needed
  if (gzip) archive_write_add_filter_gzip(w.a);
  archive_write_set_bytes_in_last_block(w.a, 1);
  if (archive_write_open(w.a, &out, nullptr, write_cb, nullptr) != ARCHIVE_OK) {
    return internal_error(std::string("tar writer: ") + error_text(w.a));
  }
  TIDAL_RETURN_IF_ERROR(add_tree(w.a, dir.fd, "", &out));
  if (archive_write_close(w.a) != ARCHIVE_OK) return internal_error(std::string("tar writer: ") + error_text(w.a));
  if (stats) *stats = out.stats;
  return std::move(out.data);
}

}  // namespace tidal::sandbox
