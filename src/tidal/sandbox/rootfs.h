// Rootfs: a sandbox's root filesystem on the host side.
//
// Layout under the daemon's root directory (the template below is the "host" one; see
// rootfs_template.h for rootfs-directory templates):
//   templates/host/              the read-only bottom layer (built once by build_host_template()):
//                                empty mount points (usr, proc, dev), merged-/usr symlinks
//                                (bin -> usr/bin ...), a small /etc of our own, /tmp, /root,
//                                /workspace. Owned by the sandbox's root uid.
//   sandboxes/<id>/              a tmpfs of size disk_mb (the disk limit) holding
//              upper.N/ work.N/  the overlayfs writable layer and its work dir (generation N)
//              layer.N/          a frozen layer: what upper.N held when the sandbox was forked
//              flat.N/           a flattened copy of a too-deep layer stack (fork, below)
//              merged/           overlayfs(lower = [frozen layers...,] template, upper) mounted
//                                in the daemon's mount namespace: the files API works here, and
//                                the sandbox's init pivots into it (then bind-mounts the host's
//                                /usr read-only on top, inside its own mount namespace only).
//
// Copy-on-write fork: a sandbox's writable layer can be *frozen*: its entries move (rename, no
// copy) into a read-only layer.N (a Layer, held by an open directory descriptor) stacked above the
// template, and the sandbox gets a fresh empty upper.N+1 on top of it (remount); the child of the fork mounts the same frozen
// layers under its own empty upper. Nothing is copied. Frozen layers live in the tmpfs of the
// sandbox that wrote them; the descriptors keep that tmpfs alive (detached) after the sandbox is
// destroyed, for as long as a descendant still stacks on it. Overlay options name layers by
// /proc/self/fd/N, so a layer stays usable after its sandbox's directory is gone. A stack deeper
// than kMaxLayers is flattened into one layer (a copy, merge_layers()) at the next fork.
//
// Failure: mount errors are kIoError naming the mount. Thread-safety: one Rootfs per sandbox,
// used by one thread at a time (the Sandbox serialises).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::sandbox {

// The host directories a sandbox sees read-only at the same path (the "host" template).
struct HostBind {
  std::string path;       // e.g. "/usr"
  unsigned long flags{};  // mount flags the host mount has that a bind must keep (nosuid, ...)
};

// A frozen (read-only from now on) overlay layer directory, held open by descriptor. Shared by
// every sandbox that stacks it; closed with the last one.
class Layer {
 public:
  // Opens `dir` (O_PATH). kIoError when it cannot.
  [[nodiscard]] static Expected<std::shared_ptr<Layer>> open(const std::string& dir);
  ~Layer();
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;
  // "/proc/self/fd/<fd>": usable in overlay options and by path-based calls of this process.
  const std::string& path() const { return path_; }

 private:
  Layer() = default;
  int fd_ = -1;
  std::string path_;
};
using LayerStack = std::vector<std::shared_ptr<Layer>>;  // top first; the template's layers are below

class Rootfs {
 public:
  static constexpr size_t kMaxLayers = 16;  // frozen layers stacked before a fork flattens them

  // Creates <root>/templates/host if missing (idempotent). `uid`/`gid`: the host ids that map to
  // root inside sandboxes. Returns the host paths the init must bind read-only.
  [[nodiscard]] static Expected<std::vector<HostBind>> build_host_template(const std::string& root,
                                                                           uint32_t uid, uint32_t gid);

  // Mounts a fresh tmpfs + overlay for sandbox `id` over `lowers` (frozen layers, top first) and
  // the template (`template_lower`: its overlay lowerdir entries, RootfsTemplate::lower()).
  // `copy_from`: layers (top first) whose merged contents are copied into the new upper first (the
  // copying fork, used when a sandbox cannot be frozen, e.g. it runs commands).
  [[nodiscard]] static Expected<Rootfs> create(const std::string& root, const std::string& id,
                                               int64_t disk_mb, uint32_t uid, uint32_t gid,
                                               const std::string& template_lower,
                                               const LayerStack& lowers = {},
                                               const std::vector<std::string>& copy_from = {});
  // Unmounts everything of sandbox dir `dir` (lazy) and removes it. Safe on partial state.
  static void destroy_dir(const std::string& dir);
  // Unmounts and removes every sandboxes/* directory (leftovers of a previous daemon).
  static int cleanup_stale(const std::string& root);

  const std::string& dir() const { return dir_; }
  const std::string& merged() const { return merged_; }
  const std::string& upper() const { return upper_; }
  const LayerStack& lowers() const { return lowers_; }
  // True when the writable layer holds nothing (no change since the last freeze or creation).
  bool upper_empty() const;

  // The stack a fork's child should mount: the current upper's contents frozen (moved into a new
  // layer.N directory) on top of lowers() (or lowers() alone when the upper is empty), flattened
  // into one layer when deeper than kMaxLayers. Commit with prepare_remount(stack) +
  // finish_remount(), or undo with thaw() (moves the contents back).
  [[nodiscard]] Expected<LayerStack> freeze_stack();
  void thaw();
  // Mounts overlay(stack, template, a fresh upper.N+1) at <dir>/next (the current root stays
  // mounted); finish_remount() then moves it to merged/ (the old one is detached lazily) and
  // abort_remount() throws it away.
  [[nodiscard]] Status prepare_remount(const LayerStack& stack);
  const std::string& next() const { return next_; }
  void finish_remount();
  void abort_remount();

 private:
  Status mount_overlay(const std::string& at, const LayerStack& lowers, const std::string& upper,
                       const std::string& work) const;

  std::string root_, template_lower_, dir_, upper_, work_, merged_, next_;
  uint32_t uid_ = 0, gid_ = 0;
  int generation_ = 0;
  LayerStack lowers_;
  std::string frozen_;  // layer.N made by freeze_stack() until finish_remount() or thaw()
  // Pending remount (prepare_remount .. finish/abort).
  LayerStack next_lowers_;
  std::string next_upper_, next_work_;
};

// Copies a directory tree preserving what overlayfs needs: modes, owners, symlinks, whiteouts
// (0/0 char devices) and trusted.* xattrs (opaque dirs).
[[nodiscard]] Status copy_tree(const std::string& from, const std::string& to);

// Merges overlay layers `layers` (top first) into directory `to` with overlayfs semantics (a
// higher layer's file, whiteout or opaque directory replaces what the lower ones had), keeping the
// whiteouts and opaque markers that hide template files. The result is one equivalent layer.
[[nodiscard]] Status merge_layers(const std::vector<std::string>& layers, const std::string& to);

}  // namespace tidal::sandbox
