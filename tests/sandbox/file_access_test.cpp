// FileAccess on a plain directory: the path sanitiser and escape attempts through '..' and symlinks.
#include "tidal/sandbox/file_access.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

namespace tidal::sandbox {
namespace {

namespace fs = std::filesystem;

class FileAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("tidal-fa-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    root_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directories(root_ / "etc");
    fs::create_directories(outside_);
    std::ofstream(root_ / "etc" / "passwd") << "sandbox passwd\n";
    std::ofstream(outside_ / "secret") << "host secret\n";
  }
  void TearDown() override { fs::remove_all(base_); }
  FileAccess files() const { return FileAccess(root_.string(), getuid(), getgid()); }

  fs::path base_, root_, outside_;
};

TEST(FileAccessPath, CheckPath) {
  EXPECT_TRUE(FileAccess::check_path("/a/b.txt").is_ok());
  EXPECT_TRUE(FileAccess::check_path("/").is_ok());
  EXPECT_TRUE(FileAccess::check_path("/a/..b/c..").is_ok());  // not a '..' component
  EXPECT_EQ(FileAccess::check_path("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FileAccess::check_path("relative").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FileAccess::check_path("/a/../../etc").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FileAccess::check_path("/..").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FileAccess::check_path(std::string("/a\0b", 4)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FileAccess::check_path("/" + std::string(5000, 'a')).code(), StatusCode::kInvalidArgument);
}

TEST_F(FileAccessTest, WriteReadListRemove) {
  FileAccess f = files();
  ASSERT_TRUE(f.write("/work/deep/dir/a.txt", "hello", 0600).is_ok());
  EXPECT_EQ(f.read("/work/deep/dir/a.txt", 100).value(), "hello");
  struct stat st;
  ASSERT_EQ(stat((root_ / "work/deep/dir/a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto entries = f.list("/work/deep/dir");
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].name, "a.txt");
  EXPECT_EQ((*entries)[0].type, "file");
  EXPECT_EQ((*entries)[0].size, 5);
  EXPECT_EQ(f.type_of("/work").value(), "dir");
  EXPECT_EQ(f.read("/work/deep/dir/a.txt", 2).status().code(), StatusCode::kInvalidArgument);  // over limit
  EXPECT_EQ(f.remove("/work", false).code(), StatusCode::kInvalidArgument);  // not empty
  EXPECT_TRUE(f.remove("/work", true).is_ok());
  EXPECT_EQ(f.read("/work/deep/dir/a.txt", 100).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(f.remove("/", true).code(), StatusCode::kInvalidArgument);
}

TEST_F(FileAccessTest, AbsoluteSymlinkResolvesInsideTheRoot) {
  fs::create_symlink("/etc/passwd", root_ / "link");
  fs::create_symlink(outside_, root_ / "out");  // absolute host path of a real host dir
  FileAccess f = files();
  // The last component may not be a symlink at all.
  EXPECT_FALSE(f.read("/link", 100).has_value());
  // Through a symlinked directory: resolved as if the sandbox root were '/'.
  EXPECT_EQ(f.read("/out/secret", 100).status().code(), StatusCode::kNotFound);
  fs::create_symlink("/etc", root_ / "etcdir");
  EXPECT_EQ(f.read("/etcdir/passwd", 100).value(), "sandbox passwd\n");
}

TEST_F(FileAccessTest, DotDotSymlinkCannotClimbOut) {
  fs::create_symlink("../../outside", root_ / "up");
  FileAccess f = files();
  EXPECT_FALSE(f.read("/up/secret", 100).has_value());
  (void)f.write("/up/planted", "x");  // may fail or land inside the root; never outside
  EXPECT_FALSE(fs::exists(outside_ / "planted"));
  auto listing = f.list("/up");
  if (listing) {
    for (const auto& e : *listing) EXPECT_NE(e.name, "secret");
  }
}

TEST_F(FileAccessTest, WriteRefusesSymlinkTarget) {
  fs::create_symlink(outside_ / "secret", root_ / "victim");
  FileAccess f = files();
  EXPECT_FALSE(f.write("/victim", "overwritten").is_ok());
  std::ifstream in(outside_ / "secret");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "host secret\n");
}

TEST_F(FileAccessTest, RecursiveRemoveDoesNotFollowSymlinks) {
  fs::create_directories(root_ / "d");
  fs::create_symlink(outside_, root_ / "d" / "out");
  FileAccess f = files();
  ASSERT_TRUE(f.remove("/d", true).is_ok());
  EXPECT_TRUE(fs::exists(outside_ / "secret"));
}

}  // namespace
}  // namespace tidal::sandbox

namespace tidal::sandbox {
namespace {

// Bounded random search: paths built from hostile pieces, against a root holding symlinks that
// point outside in every way. Whatever succeeds must stay inside the root.
TEST_F(FileAccessTest, RandomHostilePathsNeverEscape) {
  fs::create_symlink("/", root_ / "slash");
  fs::create_symlink("../../outside", root_ / "up");
  fs::create_symlink(outside_, root_ / "abs");
  fs::create_symlink("/proc/self/root", root_ / "magic");
  fs::create_directories(root_ / "d");
  fs::create_symlink("../..", root_ / "d" / "dotdot");
  const char* pieces[] = {"..", ".", "slash", "up", "abs", "magic", "d", "dotdot", "etc", "passwd",
                          "secret", "outside", "", "%2e%2e", "...", "tmp"};
  std::ofstream(outside_ / "hostonly") << "host secret\n";  // a name the loop never creates
  FileAccess f = files();
  std::mt19937 rng(12345);
  int accepted = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string path;
    int n = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < n; ++k) path += "/" + std::string(pieces[rng() % std::size(pieces)]);
    if (FileAccess::check_path(path).is_ok()) ++accepted;
    auto data = f.read(path, 1 << 20);
    if (data.has_value()) {
      EXPECT_EQ(data->find("host secret"), std::string::npos) << path;
    }
    auto listing = f.list(path);
    if (listing.has_value()) {
      for (const auto& e : *listing) EXPECT_NE(e.name, "hostonly") << path;
    }
    (void)f.write(path + "/planted", "x");
    (void)f.remove(path + "/secret", false);
  }
  EXPECT_GT(accepted, 30);
  EXPECT_TRUE(fs::exists(outside_ / "secret"));
  EXPECT_FALSE(fs::exists(outside_ / "planted"));
  EXPECT_FALSE(fs::exists(base_ / "planted"));
}

}  // namespace
}  // namespace tidal::sandbox
