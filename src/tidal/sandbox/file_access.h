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
#include <string_view>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

// Bounds on one tar upload (FileAccess::extract_tar).
struct ArchiveLimits {
  int64_t max_bytes = 1ll << 30;  // total size of the files it holds (uncompressed)
  int64_t max_entries = 100000;
};

struct ArchiveStats {
  int64_t entries = 0;  // entries extracted (or archived)
  int64_t bytes = 0;    // file bytes written (or archived)
};

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
  // Creates directory `path` and its missing parents (owned by the sandbox's root); ok when it
  // exists already (kInvalidArgument when something else has that name).
  [[nodiscard]] Status make_dir(const std::string& path, uint32_t mode = 0755) const;
  // Reads a regular file of at most max_bytes (kInvalidArgument when larger, kNotFound when absent).
  [[nodiscard]] Expected<std::string> read(const std::string& path, int64_t max_bytes) const;
  // Removes a file, a symlink, or a directory (with `recursive`, a non-empty one).
  [[nodiscard]] Status remove(const std::string& path, bool recursive) const;
  // Lists a directory (sorted by name).
  [[nodiscard]] Expected<std::vector<FileEntry>> list(const std::string& path) const;
  // "file", "dir", ... for `path` (kNotFound when absent).
  [[nodiscard]] Expected<std::string> type_of(const std::string& path) const;

  // Tar archives (archive.cpp, libarchive). extract_tar() unpacks `tar` (tar, pax or GNU tar,
  // optionally gzip-compressed) into directory `dir` (created when missing). Every entry is checked
  // before anything is written, and the archive is refused (kInvalidArgument naming the entry) for:
  // absolute names, '..' components, symlinks whose target is absolute or climbs out of `dir`,
  // hard links to names outside the archive's tree, device nodes, FIFOs, sockets, setuid/setgid
  // bits, names over 4096 bytes, more than limits.max_entries entries or limits.max_bytes bytes.
  // Extraction then opens everything with RESOLVE_BENEATH the target directory, so even a symlink
  // that the sandbox planted there cannot redirect a write outside it. Files are owned by the
  // sandbox's root, modes and mtimes come from the archive; existing files are replaced, existing
  // directories merged. Not atomic: an I/O error (e.g. ENOSPC, kResourceExhausted) leaves what was
  // written so far.
  [[nodiscard]] Expected<ArchiveStats> extract_tar(const std::string& dir, std::string_view tar,
                                                   const ArchiveLimits& limits) const;
  // Packs directory `dir` (recursively; names relative to it, symlinks stored as links, other
  // special files skipped) as a pax tar, gzip-compressed when `gzip`. kResourceExhausted when the
  // files add up to more than max_bytes.
  [[nodiscard]] Expected<std::string> create_tar(const std::string& dir, bool gzip, int64_t max_bytes,
                                                 ArchiveStats* stats = nullptr) const;

 private:
  // Opens `path` inside the root with openat2; returns fd or -errno.
  int open_in_root(const std::string& path, int flags, uint32_t mode = 0) const;
  Status make_parents(const std::string& path) const;

  std::string root_;
  uint32_t uid_, gid_;
};

}  // namespace tidal::sandbox
