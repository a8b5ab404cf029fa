// FileAccess: the files API's view of one sandbox's root, safe against escapes.
//
// Every path is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
// against the sandbox's merged root, so neither ".." nor a symlink planted by the sandbox (even an
// absolute one, or one swapped in concurrently) can reach a host file: the kernel resolves it as if
// the sandbox root were "/". Paths are also checked up front (check_path) so that the obvious
// mistakes get a clear 400 rather than a surprising result.
//
// What it sees: the sandbox's own filesystem (template + writable layer), not the read-only host
// binds (/usr) nor /proc or /dev, which exist only inside the sandbox's mount namespace.
// Files written here are owned by the sandbox's root (uid/gid given at construction).
// Thread-safety: all methods are const and may run concurrently (each opens its own descriptors).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

struct FileEntry {
  std::string name;
  std::string type;  // "file", "dir", "symlink", "other"
  int64_t size = 0;
  uint32_t mode = 0;  // permission bits
  int64_t mtime = 0;  // seconds since the epoch
};

class FileAccess {
 public:
  FileAccess(std::string root, uint32_t uid, uint32_t gid)
      : root_(std::move(root)), uid_(uid), gid_(gid) {}

  // kInvalidArgument for: empty, relative, longer than 4096 bytes, a NUL byte, or a ".." component.
  [[nodiscard]] static Status check_path(const std::string& path);

  // Writes (creates or truncates) a regular file, creating missing parent directories.
  [[nodiscard]] Status write(const std::string& path, const std::string& data, uint32_t mode = 0644) const;
  // Reads a regular file of at most max_bytes (kInvalidArgument when larger, kNotFound when absent).
  [[nodiscard]] Expected<std::string> read(const std::string& path, int64_t max_bytes) const;
  // Removes a file, a symlink, or a directory (with `recursive`, a non-empty one).
  [[nodiscard]] Status remove(const std::string& path, bool recursive) const;
  // Lists a directory (sorted by name).
  [[nodiscard]] Expected<std::vector<FileEntry>> list(const std::string& path) const;
  // "file", "dir", ... for `path` (kNotFound when absent).
  [[nodiscard]] Expected<std::string> type_of(const std::string& path) const;

 private:
  // Opens `path` inside the root with openat2; returns fd or -errno.
  int open_in_root(const std::string& path, int flags, uint32_t mode = 0) const;
  Status make_parents(const std::string& path) const;

  std::string root_;
  uint32_t uid_, gid_;
};

}  // namespace tidal::sandbox
