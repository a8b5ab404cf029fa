// Scratch folders for tests, removed when the test process exits. Each ctest test runs as a
// process of its own, so per-process folders (named by pid) would otherwise pile up in /tmp, one
// set per test per run. Only the process that made a folder removes it: a forked child that
// exits normally leaves its parent's folders alone.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace tidal::test {

class TempDirs {
 public:
  static TempDirs& get() {
    static TempDirs t;
    return t;
  }
  // Creates `dir` (and its parents) if missing, and removes it at exit.
  void add(const std::filesystem::path& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& d : dirs_)
      if (d == dir) return;
    dirs_.push_back(dir);
  }
  ~TempDirs() {
    if (::getpid() != owner_) return;
    for (const auto& d : dirs_) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  }

 private:
  TempDirs() : owner_(::getpid()) {}
  pid_t owner_;
  std::mutex mu_;
  std::vector<std::filesystem::path> dirs_;
};

}  // namespace tidal::test
