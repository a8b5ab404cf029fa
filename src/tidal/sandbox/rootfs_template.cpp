#include "tidal/sandbox/rootfs_template.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace tidal::sandbox {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

Status write_all_to(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return io_error("open " + path + ": " + errno_text());
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return io_error("write " + path + ": " + std::strerror(err));
  return Status::ok();
}

// A user namespace descriptor mapping ids 0..count-1 to uid../gid.. on the host: a short-lived child
// unshares it, we write its maps and keep a reference to the namespace.
Expected<int> mapped_userns(uint32_t uid, uint32_t gid, uint32_t count) {
  int ready[2], go[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return io_error("pipe: " + errno_text());
  if (::pipe2(go, O_CLOEXEC) != 0) {
    ::close(ready[0]);
    ::close(ready[1]);
    return io_error("pipe: " + errno_text());
  }
  pid_t pid = ::fork();
  if (pid == 0) {  // only async-signal-safe calls here: the daemon may be multi-threaded
    ::close(ready[0]);
    ::close(go[1]);
    char c = ::unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
    if (::write(ready[1], &c, 1) != 1) _exit(1);
    (void)::read(go[0], &c, 1);  // until the parent is done (EOF)
    _exit(0);
  }
  ::close(ready[1]);
  ::close(go[0]);
  if (pid < 0) {
    ::close(ready[0]);
    ::close(go[1]);
    return io_error("fork: " + errno_text());
  }
  char c = 0;
  bool unshared = ::read(ready[0], &c, 1) == 1 && c == 'y';
  ::close(ready[0]);
  Status status = unshared ? Status::ok() : io_error("unshare(CLONE_NEWUSER) failed in the idmap helper");
  std::string proc = "/proc/" + std::to_string(pid);
  std::string map = "0 " + std::to_string(uid) + " " + std::to_string(count) + "\n";
  if (status.is_ok()) status = write_all_to(proc + "/uid_map", map);
  map = "0 " + std::to_string(gid) + " " + std::to_string(count) + "\n";
  if (status.is_ok()) status = write_all_to(proc + "/gid_map", map);
  int ns = -1;
  if (status.is_ok()) {
    ns = ::open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0) status = io_error("open " + proc + "/ns/user: " + errno_text());
  }
  ::close(go[1]);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (!status.is_ok()) return status;
  return ns;
}

// A detached, read-only, nosuid, nodev mount of `dir` whose ids appear shifted by the user
// namespace `userns` (idmapped mount). Returns its descriptor.
Expected<int> idmapped_tree(const std::string& dir, int userns) {
  int tree = static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, dir.c_str(),
                                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
  if (tree < 0) return io_error("open_tree " + dir + ": " + errno_text());
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  attr.userns_fd = static_cast<uint64_t>(userns);
  if (::mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) != 0) {
    Status s = io_error("idmapped mount of " + dir + ": " + errno_text());
    ::close(tree);
    return s;
  }
  return tree;
}

// Opens `rel` inside `dir` as if `dir` were "/" (symlinks resolved inside it).
int open_inside(int dirfd, const char* rel) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, dirfd, rel, &how, sizeof(how)));
}

}  // namespace

Status RootfsTemplate::check_name(const std::string& name) {
  auto bad = [&](const std::string& why) { return invalid_argument("template name '" + name + "' " + why); };
  if (name.empty() || name.size() > 32) return bad("must have 1 to 32 characters");
  if (name == "host") return bad("is reserved (the built-in template)");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
      return bad("must be lower-case letters, digits, '.', '_' or '-', starting with a letter or digit");
    }
  }
  return Status::ok();
}

Expected<std::shared_ptr<const RootfsTemplate>> RootfsTemplate::open_host(const std::string& root, uint32_t uid,
                                                                         uint32_t gid) {
  std::shared_ptr<RootfsTemplate> t(new RootfsTemplate());
  TIDAL_ASSIGN_OR_RETURN(t->binds_, Rootfs::build_host_template(root, uid, gid));
  t->name_ = "host";
  t->source_ = "host";
  t->lower_ = root + "/templates/host";
  return std::shared_ptr<const RootfsTemplate>(std::move(t));
}

Expected<std::shared_ptr<const RootfsTemplate>> RootfsTemplate::open_dir(const std::string& name,
                                                                        const std::string& dir,
                                                                        const std::string& root, uint32_t uid,
                                                                        uint32_t gid, uint32_t id_count) {
  TIDAL_RETURN_IF_ERROR(check_name(name));
  auto bad = [&](const std::string& why) {
    return invalid_argument("template '" + name + "': " + (dir.empty() ? std::string("(no directory)") : dir) + " " + why);
  };
  if (dir.empty()) return bad("is empty; expected NAME=DIR");
  std::error_code ec;
  fs::path canon = fs::canonical(dir, ec);
  if (ec) return bad("does not exist (" + ec.message() + ")");
  if (!fs::is_directory(canon, ec)) return bad("is not a directory");
  if (canon == "/") return bad("is the host's root filesystem; give a separate rootfs directory");
  std::string c = canon.string();
  if (c == root || c.rfind(root + "/", 0) == 0) return bad("is inside the daemon's --root " + root);
  if (fs::exists(canon / "debootstrap", ec)) {
    return bad("is an unfinished debootstrap (it still has debootstrap/); run scripts/make-sandbox-template.sh again");
  }
  // The init mounts /proc and /dev there: they must be real directories when present (a symlink
  // would point the mount elsewhere).
  for (const char* d : {"proc", "dev"}) {
    struct stat st;
    if (::lstat((canon / d).c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) return bad(std::string("has a /") + d + " that is not a directory");
  }
  {
    int dirfd = ::open(c.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return bad("cannot be opened: " + errno_text());
    int sh = open_inside(dirfd, "bin/sh");
    struct stat st;
    bool ok = sh >= 0 && ::fstat(sh, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
    if (sh >= 0) ::close(sh);
    ::close(dirfd);
    if (!ok) {
      return bad("is not a plausible root filesystem: it has no executable /bin/sh (build one with "
                 "scripts/make-sandbox-template.sh)");
    }
  }
  std::shared_ptr<RootfsTemplate> t(new RootfsTemplate());
  t->name_ = name;
  t->source_ = c;
  std::string bottom = c;
  auto userns = mapped_userns(uid, gid, id_count);
  Expected<int> tree = userns ? idmapped_tree(c, *userns) : Expected<int>(userns.status());
  if (userns) ::close(*userns);
  if (tree) {
    t->tree_fd_ = *tree;
    t->idmapped_ = true;
    bottom = "/proc/self/fd/" + std::to_string(*tree);
  } else {
    t->note_ = "not idmapped (" + tree.status().message() + "): its files show as owned by nobody";
  }
  // The skeleton layer: what the sandbox needs and DIR lacks, owned by the sandbox's root.
  std::string skel = root + "/templates/dir-" + name;
  fs::remove_all(skel, ec);
  fs::create_directories(skel, ec);
  if (ec) return io_error("cannot create " + skel + ": " + ec.message());
  bool empty = true;
  for (const char* d : {"proc", "dev", "tmp", "root", "workspace", "etc"}) {
    if (fs::exists(fs::symlink_status(canon / d, ec))) continue;
    std::string path = skel + "/" + d;
    if (::mkdir(path.c_str(), 0755) != 0) return io_error("mkdir " + path + ": " + errno_text());
    ::chmod(path.c_str(), std::strcmp(d, "tmp") == 0 ? 01777 : std::strcmp(d, "root") == 0 ? 0700 : 0755);
    if (::lchown(path.c_str(), uid, gid) != 0) return io_error("chown " + path + ": " + errno_text());
    empty = false;
  }
  ::chmod(skel.c_str(), 0755);
  if (::lchown(skel.c_str(), uid, gid) != 0) return io_error("chown " + skel + ": " + errno_text());
  t->lower_ = empty ? bottom : skel + ":" + bottom;
  return std::shared_ptr<const RootfsTemplate>(std::move(t));
}

RootfsTemplate::~RootfsTemplate() {
  if (tree_fd_ >= 0) ::close(tree_fd_);
}

}  // namespace tidal::sandbox
