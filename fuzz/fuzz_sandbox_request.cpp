// libFuzzer target: the sandbox API's request parsing and path/archive sanitising must reject or
// accept any input without crashing, and what they accept must be safe. The first byte picks:
//   0 POST /v1/sandboxes body   1 .../exec body   2 /v1/run body   3 ?label= filter
//   4 a files-API path          5 a tar upload, extracted into a scratch directory
// Checked properties: accepted specs are within SpecBounds, execs have an argv, a positive timeout
// and an absolute (or default) cwd, run files have sane paths; an accepted path is absolute,
// NUL-free, at most 4096 bytes, without '..'; an archive never writes outside its target.
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "tidal/sandbox/file_access.h"
#include "tidal/sandbox/sandbox_api.h"

namespace {

using namespace tidal::sandbox;
namespace fs = std::filesystem;

void check(bool ok) {
  if (!ok) std::abort();
}

bool path_is_sane(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.size() > 4096 || p.find('\0') != std::string::npos) return false;
  size_t pos = 0;
  while (pos <= p.size()) {
    size_t next = p.find('/', pos);
    if (next == std::string::npos) next = p.size();
    if (p.compare(pos, next - pos, "..") == 0) return false;
    pos = next + 1;
  }
  return true;
}

int entries(const fs::path& dir) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++n;
  return n;
}

// A scratch tree per input (libFuzzer exits without running atexit handlers): base/root is the
// sandbox root, holding only t/ (the target); base/outside must stay untouched.
fs::path make_scratch() {
  char tmpl[] = "/tmp/fuzz-sandbox-XXXXXX";
  fs::path b = mkdtemp(tmpl);
  fs::create_directories(b / "root" / "t");
  fs::create_directories(b / "outside");
  return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto c = parse_create_request(in);
      if (c) {
        const SandboxSpec& s = c->spec;
        check(s.cpu_millis >= SpecBounds::kMinCpuMillis && s.cpu_millis <= SpecBounds::kMaxCpuMillis);
        check(s.memory_mb >= SpecBounds::kMinMemoryMb && s.memory_mb <= SpecBounds::kMaxMemoryMb);
        check(s.pids >= SpecBounds::kMinPids && s.pids <= SpecBounds::kMaxPids);
        check(s.disk_mb >= SpecBounds::kMinDiskMb && s.disk_mb <= SpecBounds::kMaxDiskMb);
        check(s.timeout_s >= 0 && s.timeout_s <= SpecBounds::kMaxTimeoutS);
        check(c->ticket.wait_ms >= -1 && c->ticket.wait_ms <= 3600 * 1000);
      }
      break;
    }
    case 1: {
      auto e = parse_exec_request(in);
      if (e) {
        check(!e->exec.argv.empty());
        check(e->exec.timeout_ms >= 1);
        check(e->exec.cwd.empty() || e->exec.cwd[0] == '/');
        check(e->exec.max_output_bytes >= 0 && e->exec.max_output_bytes <= (64ll << 20));
      }
      break;
    }
    case 2: {
      auto r = parse_run_request(in);
      if (r) {
        for (const auto& [path, content] : r->run.files) check(path_is_sane(path));
        check(r->run.spec.memory_mb >= SpecBounds::kMinMemoryMb);
      }
      break;
    }
    case 3:
      (void)parse_label_filter(std::string(in));
      break;
    case 4: {
      std::string p(in);
      check(FileAccess::check_path(p).is_ok() == path_is_sane(p));
      break;
    }
    case 5: {
      const fs::path base = make_scratch();
      FileAccess files((base / "root").string(), getuid(), getgid());
      ArchiveLimits limits;
      limits.max_bytes = 1 << 20;
      limits.max_entries = 64;
      (void)files.extract_tar("/t", in, limits);
      check(entries(base) == 2 && entries(base / "root") == 1 && entries(base / "outside") == 0);
      std::error_code ec;
      fs::remove_all(base, ec);
      break;
    }
  }
  return 0;
}
