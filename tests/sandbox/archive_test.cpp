// Tar upload/download (FileAccess::extract_tar / create_tar) on a plain directory: round trips and
// hostile archives (escapes by name, symlink, hard link or a planted symlink; devices; setuid;
// bombs). Every refusal must leave the target untouched and the outside world unchanged.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "test_files.h"

#include "tidal/sandbox/file_access.h"

namespace tidal::sandbox {
namespace {

namespace fs = std::filesystem;

struct Entry {
  std::string name;
  mode_t mode = S_IFREG | 0644;
  std::string data;
  std::string link;      // symlink target
  std::string hardlink;  // hard link target
  int64_t size = -1;     // declared size; -1: data.size()
};

Entry file(std::string name, std::string data, mode_t perm = 0644) {
  Entry e;
  e.name = std::move(name);
  e.mode = S_IFREG | perm;
  e.data = std::move(data);
  return e;
}
Entry node(std::string name, mode_t mode) {
  Entry e;
  e.name = std::move(name);
  e.mode = mode;
  return e;
}
Entry sym(std::string name, std::string target) {
  Entry e = node(std::move(name), S_IFLNK | 0777);
  e.link = std::move(target);
  return e;
}
Entry hard(std::string name, std::string target) {
  Entry e = node(std::move(name), S_IFREG | 0644);
  e.hardlink = std::move(target);
  return e;
}

// A tar built with libarchive (pax), gzip-compressed when asked.
std::string make_tar(const std::vector<Entry>& entries, bool gzip = false) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_set_bytes_in_last_block(a, 1);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* ctx, const void* buf, size_t len) -> la_ssize_t {
        static_cast<std::string*>(ctx)->append(static_cast<const char*>(buf), len);
        return static_cast<la_ssize_t>(len);
      },
      nullptr);
  for (const auto& e : entries) {
    archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.name.c_str());
    archive_entry_set_mode(ae, e.mode);
    if (!e.link.empty()) archive_entry_set_symlink(ae, e.link.c_str());
    if (!e.hardlink.empty()) archive_entry_set_hardlink(ae, e.hardlink.c_str());
    if (S_ISCHR(e.mode) || S_ISBLK(e.mode)) archive_entry_set_rdev(ae, makedev(1, 3));
    int64_t size = S_ISREG(e.mode) && e.hardlink.empty() ? (e.size >= 0 ? e.size : static_cast<int64_t>(e.data.size())) : 0;
    archive_entry_set_size(ae, size);
    archive_write_header(a, ae);
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("tidal-ar-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    root_ = base_ / "root";
    fs::create_directories(root_ / "etc");
    fs::create_directories(root_ / "work");
    fs::create_directories(base_ / "outside");
    std::ofstream(root_ / "etc" / "passwd") << "sandbox passwd\n";
    std::ofstream(base_ / "outside" / "secret") << "host secret\n";
  }
  void TearDown() override { fs::remove_all(base_); }
  FileAccess files() const { return FileAccess(root_.string(), getuid(), getgid()); }

  // Expects the archive to be refused with kInvalidArgument naming `what`, with nothing written.
  void expect_refused(const std::vector<Entry>& entries, const std::string& what, const std::string& dir = "/work") {
    auto before = listing();
    auto r = files().extract_tar(dir, make_tar(entries), ArchiveLimits{});
    ASSERT_FALSE(r.has_value()) << "accepted an archive with " << what;
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().to_string();
    EXPECT_EQ(listing(), before) << "a refused archive wrote something";
    EXPECT_EQ(slurp(base_ / "outside" / "secret"), "host secret\n");
    EXPECT_EQ(slurp(root_ / "etc" / "passwd"), "sandbox passwd\n");
  }
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(base_)) out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path base_, root_;
};

TEST_F(ArchiveTest, RoundTripKeepsFilesModesLinksAndTree) {
  std::string tar = make_tar({node("./src/", S_IFDIR | 0750),
                              file("./src/main.py", "print(42)\n", 0755),
                              file("src/empty.txt", "", 0644),
                              file("src/lib/deep/x.bin", std::string(100000, '\x01'), 0600),
                              sym("src/link", "lib/deep/x.bin"),
                              hard("src/hard", "src/main.py"),
                              file("top.txt", "top", 0644)},
                             /*gzip=*/true);
  auto stats = files().extract_tar("/work/new", tar, ArchiveLimits{});
  ASSERT_TRUE(stats.has_value()) << stats.status().to_string();
  EXPECT_EQ(stats->bytes, 10 + 0 + 100000 + 3);
  fs::path w = root_ / "work" / "new";
  EXPECT_EQ(slurp(w / "src/main.py"), "print(42)\n");
  EXPECT_EQ(slurp(w / "top.txt"), "top");
  EXPECT_EQ(fs::file_size(w / "src/lib/deep/x.bin"), 100000u);
  EXPECT_EQ(fs::read_symlink(w / "src/link"), "lib/deep/x.bin");
  struct stat a, b;
  ASSERT_EQ(stat((w / "src/main.py").c_str(), &a), 0);
  ASSERT_EQ(stat((w / "src/hard").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_mode & 07777, 0755u);
  ASSERT_EQ(stat((w / "src").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 0750u);

  // Download and extract again elsewhere: the same tree.
  ArchiveStats out_stats;
  auto down = files().create_tar("/work/new", false, 1 << 20, &out_stats);
  ASSERT_TRUE(down.has_value()) << down.status().to_string();
  EXPECT_EQ(out_stats.entries, 9);  // src, 7 under it (lib and lib/deep included), top.txt
  ASSERT_TRUE(files().extract_tar("/copy", *down, ArchiveLimits{}).has_value());
  EXPECT_EQ(slurp(root_ / "copy/src/main.py"), "print(42)\n");
  EXPECT_EQ(fs::read_symlink(root_ / "copy/src/link"), "lib/deep/x.bin");
  auto gz = files().create_tar("/work/new", true, 1 << 20);
  ASSERT_TRUE(gz.has_value());
  EXPECT_EQ(static_cast<unsigned char>((*gz)[0]), 0x1f);  // gzip magic
  EXPECT_LT(gz->size(), down->size());
  // Over the size limit, and unknown / non-directory targets.
  EXPECT_EQ(files().create_tar("/work/new", false, 1000).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(files().create_tar("/nope", false, 1 << 20).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(files().create_tar("/work/new/top.txt", false, 1 << 20).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ArchiveTest, ExistingFilesAreReplacedAndDirectoriesMerged) {
  std::ofstream(root_ / "work" / "keep") << "keep";
  std::ofstream(root_ / "work" / "f") << "old";
  ASSERT_TRUE(files().extract_tar("/work", make_tar({file("f", "new", 0644)}), ArchiveLimits{}).has_value());
  EXPECT_EQ(slurp(root_ / "work" / "f"), "new");
  EXPECT_EQ(slurp(root_ / "work" / "keep"), "keep");
}

TEST_F(ArchiveTest, HostileNamesAreRefused) {
  expect_refused({file("ok", "x", 0644), file("/etc/passwd", "pwned", 0644)}, "absolute");
  expect_refused({file("../../outside/secret", "pwned", 0644)}, "'..'");
  expect_refused({file("a/../../b", "pwned", 0644)}, "'..'");
  expect_refused({file(std::string(5000, 'a'), "x", 0644)}, "4096");
}

TEST_F(ArchiveTest, LinksOutOfTheTargetAreRefused) {
  expect_refused({sym("l", "/etc")}, "symlink target");
  expect_refused({sym("l", "../../outside")}, "symlink target");
  expect_refused({sym("d/l", "../..")}, "symlink target");
  // Symlink then a write through it: the link is refused before anything is written.
  expect_refused({sym("l", "../../outside"), file("l/secret", "pwned", 0644)}, "symlink target");
  expect_refused({hard("h", "/etc/passwd")}, "hard link target");
  expect_refused({hard("h", "../etc/passwd")}, "hard link target");
}

TEST_F(ArchiveTest, SpecialFilesAndSetuidAreRefused) {
  expect_refused({node("mem", S_IFCHR | 0666)}, "device");
  expect_refused({node("sda", S_IFBLK | 0666)}, "device");
  expect_refused({node("fifo", S_IFIFO | 0666)}, "FIFO");
  expect_refused({file("su", "#!/bin/sh\n", 04755)}, "setuid");
  expect_refused({node("sg", S_IFDIR | 02755)}, "setuid");
}

TEST_F(ArchiveTest, PlantedSymlinkInTheTargetCannotRedirectWrites) {
  // The sandbox planted links in the target directory; archive entries that go through them must
  // not reach outside the target (not even elsewhere inside the sandbox).
  fs::create_symlink("/etc", root_ / "work" / "evil");         // absolute: the sandbox's /etc
  fs::create_symlink("../etc", root_ / "work" / "evil2");      // relative, climbs out
  fs::create_symlink((base_ / "outside").string(), root_ / "work" / "evil3");  // a host path
  for (const char* name : {"evil/passwd", "evil2/passwd", "evil3/secret"}) {
    auto r = files().extract_tar("/work", make_tar({file(name, "pwned", 0644)}), ArchiveLimits{});
    EXPECT_FALSE(r.has_value()) << name;
  }
  // A hard link whose target name is a planted symlink is not followed.
  fs::create_symlink("/etc/passwd", root_ / "work" / "pw");
  EXPECT_FALSE(files().extract_tar("/work", make_tar({hard("h", "pw")}), ArchiveLimits{}).has_value());
  // Replacing the planted link by a file is fine (the link itself is removed, not followed).
  ASSERT_TRUE(files().extract_tar("/work", make_tar({file("evil", "mine", 0644)}), ArchiveLimits{}).has_value());
  EXPECT_EQ(slurp(root_ / "work" / "evil"), "mine");
  EXPECT_EQ(slurp(root_ / "etc" / "passwd"), "sandbox passwd\n");
  EXPECT_EQ(slurp(base_ / "outside" / "secret"), "host secret\n");
}

TEST_F(ArchiveTest, BombsAndGarbageAreRefused) {
  ArchiveLimits small;
  small.max_bytes = 1 << 20;
  small.max_entries = 10;
  // A gzip bomb: 64 MiB of zeros compresses to ~64 KiB; refused from its header, before writing.
  std::string bomb = make_tar({file("zeros", std::string(64 << 20, '\0'), 0644)}, true);
  EXPECT_LT(bomb.size(), 1u << 20);
  auto r = files().extract_tar("/work", bomb, small);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().to_string();
  EXPECT_FALSE(fs::exists(root_ / "work" / "zeros"));
  std::vector<Entry> many;
  for (int i = 0; i < 11; ++i) many.push_back(file("f" + std::to_string(i), "x"));
  EXPECT_NE(files().extract_tar("/work", make_tar(many), small).status().message().find("entries"), std::string::npos);
  for (const std::string& junk : {std::string("not a tar"), std::string("\x1f\x8b garbage"), std::string(700, 'x')}) {
    EXPECT_EQ(files().extract_tar("/work", junk, small).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(files().extract_tar("/work", std::string(1024, '\0'), small)->entries, 0);  // an empty tar
  // Found by fuzz_sandbox_request: a gzip stream on which libarchive fails without an error string.
  const std::string no_error_string("\x1f\x8b\x08\x00\xe6\x27\x0a\x6b\x02\xff\xed\xcd\xc1\x09\x83\x40\x14\x04\xd0\x5f\x4a\x2a\x70\x37\x28\x6e\x3d\xc6\x0e\x74\x05\xcb\x77\x91\x40\x20\xe7\xe8\x25\xef\x5d\x06\x66\x0e\x33\xa5\x57\x9a\xbb\xba\xd7\xb8\x4e\x6e\xc6\x61\x38\xb3\xf9\xce\xfc\xfc\x6c\xef\xbe\xf4\x25\xc7\x23\xc7\x0d\xb6\xb5\x4e\x4b\xbb\x8c\xff\xb4\xdf\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x6e\x65\x74\x77\x6f\x72\x20\x20\x20\x00\x00", 101);
  EXPECT_EQ(files().extract_tar("/work", no_error_string, small).status().code(), StatusCode::kInvalidArgument);
  // A truncated archive (header says 4096 bytes, data cut short) fails cleanly.
  std::string good = make_tar({file("f", std::string(4096, 'a'), 0644)});
  EXPECT_FALSE(files().extract_tar("/work", good.substr(0, 1024), small).has_value());
  // Target paths get the files API checks.
  EXPECT_EQ(files().extract_tar("../x", good, small).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(files().extract_tar("/a/../..", good, small).status().code(), StatusCode::kInvalidArgument);
  std::ofstream(root_ / "work" / "file") << "x";
  EXPECT_EQ(files().extract_tar("/work/file", good, small).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tidal::sandbox
