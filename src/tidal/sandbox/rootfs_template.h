// RootfsTemplate: the read-only bottom of a sandbox's root filesystem (the overlay's lowest layers)
// and the host directories its init binds read-only on top.
//
// Two kinds:
//   - "host" (the default): <root>/templates/host, a small tree of our own (empty mount points, an
//     /etc without host secrets, merged-/usr links; see Rootfs::build_host_template), with the
//     host's /usr (and /lib... on non-merged hosts) bound read-only inside the sandbox.
//   - a rootfs directory (`tidal sandbox serve --template NAME=DIR`), e.g. a debootstrapped Debian
//     built by scripts/make-sandbox-template.sh: the whole root is the directory, nothing of the
//     host is bound. DIR is never written: it is the lowest overlay layer, seen through an
//     *idmapped*, read-only, nosuid, nodev mount (host uid/gid u appears as u inside the sandbox,
//     i.e. host root's files belong to the sandbox's root, who may change them in its own writable
//     layer), held as a detached mount by descriptor (nothing in the mount table). Where the
//     filesystem cannot be idmapped, DIR is used as it is (files show as owned by nobody and only
//     what is world-writable, plus the directories we add, can be written). Mount points and
//     directories the sandbox needs but DIR lacks (proc, dev, tmp, root, workspace, etc) come from
//     a small "skeleton" layer <root>/templates/dir-NAME stacked above DIR, rebuilt at each start.
//
// Thread-safety: immutable once opened; shared by every sandbox built on it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/sandbox/rootfs.h"

namespace tidal::sandbox {

class RootfsTemplate {
 public:
  // The "host" template under daemon root `root` (built there if missing); `uid`/`gid`: the host
  // ids of root inside sandboxes.
  [[nodiscard]] static Expected<std::shared_ptr<const RootfsTemplate>> open_host(const std::string& root,
                                                                                uint32_t uid, uint32_t gid);
  // A directory template. kInvalidArgument naming the template and the problem when `name` is not
  // a valid name ([a-z0-9][a-z0-9._-]*, at most 32 characters, not "host") or `dir` is missing, not
  // a directory, the host's /, inside `root`, an unfinished debootstrap, has a non-directory
  // proc/dev, or has no executable bin/sh (resolved inside `dir`). kIoError when the skeleton layer
  // cannot be written. `id_count`: how many ids the sandboxes map (the idmap's size).
  [[nodiscard]] static Expected<std::shared_ptr<const RootfsTemplate>> open_dir(const std::string& name,
                                                                               const std::string& dir,
                                                                               const std::string& root, uint32_t uid,
                                                                               uint32_t gid, uint32_t id_count);
  // Checks a template name (see open_dir).
  [[nodiscard]] static Status check_name(const std::string& name);
  ~RootfsTemplate();
  RootfsTemplate(const RootfsTemplate&) = delete;
  RootfsTemplate& operator=(const RootfsTemplate&) = delete;

  const std::string& name() const { return name_; }
  // "host" or the canonical rootfs directory.
  const std::string& source() const { return source_; }
  // The overlay lowerdir entries of the template, top first, joined with ':' (below frozen layers).
  const std::string& lower() const { return lower_; }
  // Host directories the init binds read-only (empty for directory templates).
  const std::vector<HostBind>& binds() const { return binds_; }
  // True when DIR is seen through an idmapped mount (directory templates).
  bool idmapped() const { return idmapped_; }
  // Why a directory template is not idmapped ("" when it is, or for "host").
  const std::string& note() const { return note_; }

 private:
  RootfsTemplate() = default;
  std::string name_, source_, lower_, note_;
  std::vector<HostBind> binds_;
  bool idmapped_ = false;
  int tree_fd_ = -1;  // the detached idmapped mount of DIR
};

}  // namespace tidal::sandbox
