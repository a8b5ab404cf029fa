// Rootfs: a sandbox's root filesystem on the host side.
//
// Layout under the daemon's root directory:
//   templates/host/              the read-only lower layer (built once by build_host_template()):
//                                empty mount points (usr, proc, dev), merged-/usr symlinks
//                                (bin -> usr/bin ...), a small /etc of our own, /tmp, /root,
//                                /workspace. Owned by the sandbox's root uid.
//   sandboxes/<id>/              a tmpfs of size disk_mb (the disk limit) holding
//              upper/ work/      the overlayfs writable layer and its work dir
//              merged/           overlayfs(lower = template, upper) mounted in the daemon's
//                                mount namespace: the files API works here, and the sandbox's
//                                init pivots into it (then bind-mounts the host's /usr read-only
//                                on top, inside its own mount namespace only).
//
// Failure: mount errors are kIoError naming the mount. Thread-safety: one Rootfs per sandbox,
// used by one thread at a time (the Sandbox serialises).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

// The host directories a sandbox sees read-only at the same path (the "host" template).
struct HostBind {
  std::string path;       // e.g. "/usr"
  unsigned long flags{};  // mount flags the host mount has that a bind must keep (nosuid, ...)
};

class Rootfs {
 public:
  // Creates <root>/templates/host if missing (idempotent). `uid`/`gid`: the host ids that map to
  // root inside sandboxes. Returns the host paths the init must bind read-only.
  [[nodiscard]] static Expected<std::vector<HostBind>> build_host_template(const std::string& root,
                                                                           uint32_t uid, uint32_t gid);

  // Mounts a fresh tmpfs + overlay for sandbox `id`. `copy_from`: when non-empty, the upper layer
  // of another (live) sandbox whose files are copied in first (fork).
  [[nodiscard]] static Expected<Rootfs> create(const std::string& root, const std::string& id,
                                               int64_t disk_mb, uint32_t uid, uint32_t gid,
                                               const std::string& copy_from_upper = {});
  // Unmounts everything of sandbox dir `dir` (lazy) and removes it. Safe on partial state.
  static void destroy_dir(const std::string& dir);
  // Unmounts and removes every sandboxes/* directory (leftovers of a previous daemon).
  static int cleanup_stale(const std::string& root);

  const std::string& dir() const { return dir_; }
  const std::string& merged() const { return merged_; }
  const std::string& upper() const { return upper_; }

 private:
  std::string dir_, upper_, merged_;
};

// Copies a directory tree preserving what overlayfs needs: modes, owners, symlinks, whiteouts
// (0/0 char devices) and trusted.* xattrs (opaque dirs). Used for fork.
[[nodiscard]] Status copy_tree(const std::string& from, const std::string& to);

}  // namespace tidal::sandbox
