// Root filesystem templates other than "host" (rootfs_template.h): a tiny rootfs the test builds
// from a few host binaries and their libraries, registered with ManagerOptions::templates; and, when
// one was built with scripts/make-sandbox-template.sh, the Debian template with python3.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "sandbox_test_env.h"
#include "test_files.h"

namespace tidal::sandbox::testing {
namespace {

namespace fs = std::filesystem;

// The shared libraries `binary` loads (ldd), as absolute host paths.
std::set<std::string> libraries_of(const std::string& binary) {
  std::set<std::string> libs;
  FILE* p = popen(("ldd " + binary + " 2>/dev/null").c_str(), "r");
  if (!p) return libs;
  char line[512];
  while (std::fgets(line, sizeof(line), p)) {
    std::istringstream ls(line);
    std::string word;
    while (ls >> word) {
      if (word[0] == '/') libs.insert(word);
    }
  }
  pclose(p);
  return libs;
}

// A minimal root filesystem: a few host programs in /bin with their libraries at the same paths,
// an /etc with a marker file, owned by host root like a debootstrapped tree. No /proc, /dev,
// /workspace or /tmp: the daemon's skeleton layer must supply them.
bool make_mini_rootfs(const std::string& dir, std::string* why) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir + "/bin", ec);
  fs::create_directories(dir + "/etc", ec);
  for (const char* prog : {"sh", "cat", "ls", "stat", "mkdir", "rm", "grep"}) {
    std::string host = std::string("/bin/") + prog;
    if (!fs::exists(host)) host = std::string("/usr/bin/") + prog;
    if (!fs::exists(host)) {
      *why = std::string("no ") + prog + " on the host";
      return false;
    }
    fs::copy_file(host, dir + "/bin/" + prog, fs::copy_options::overwrite_existing, ec);  // follows symlinks
    if (ec) {
      *why = "copy " + host + ": " + ec.message();
      return false;
    }
    for (const auto& lib : libraries_of(host)) {
      fs::create_directories(dir + fs::path(lib).parent_path().string(), ec);
      fs::copy_file(lib, dir + lib, fs::copy_options::overwrite_existing, ec);
    }
  }
  std::ofstream(dir + "/etc/marker") << "template\n";
  ::chmod(dir.c_str(), 0755);
  return true;
}

class Template : public SandboxService {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    dir_ = "/tmp/tidal-sandbox-template-test-" + std::to_string(getpid());
    std::string why;
    ASSERT_TRUE(make_mini_rootfs(dir_, &why)) << why;
    templates_["mini"] = dir_;
    warm_pool_ = 1;                          // every template's pool ...
    warm_pool_per_template_["mini"] = 2;     // ... but this one's
    SandboxService::SetUp();
  }
  void TearDown() override {
    SandboxService::TearDown();
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_F(Template, RootIsTheDirectoryReadOnlyWithWritesInTheSandboxLayer) {
  json health = call_json("GET", "/health", nullptr, 200);
  ASSERT_EQ(health["templates"].size(), 2u) << health.dump();
  json mini = health["templates"][1];
  EXPECT_EQ(mini["name"], "mini");
  EXPECT_EQ(mini["source"], dir_);
  const bool idmapped = mini.value("idmapped", false);
  if (!idmapped) std::printf("[ note ] template not idmapped here: %s\n", mini.value("note", "").c_str());

  // Each template has its own warm pool: the first create is a hand-out from "mini"'s.
  for (int i = 0; i < 500 && (manager_->n_warm("mini") < 2 || manager_->n_warm("host") < 1); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(manager_->n_warm("mini"), 2u);
  ASSERT_EQ(manager_->n_warm("host"), 1u);
  std::string id = create({{"template", "mini"}});
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_warm_hits_total 1\n"), std::string::npos);
  EXPECT_EQ(manager_->n_warm("host"), 1u);
  json info = call_json("GET", "/v1/sandboxes/" + id, nullptr, 200);
  EXPECT_EQ(info["template"], "mini");
  // Its programs run; the host's files are not there (no /usr, nothing the host has in /etc).
  json r = sh(id, "cat /etc/marker; ls /; ls /usr 2>&1 >/dev/null | grep -c 'No such'; "
                  "cat /etc/hostname 2>&1 | grep -c 'No such'");
  EXPECT_EQ(r["exit_code"], 0) << r.dump();
  EXPECT_EQ(r["stdout"], "template\nbin\ndev\netc\nlib\n" + std::string(fs::exists(dir_ + "/lib64") ? "lib64\n" : "") +
                             "proc\nroot\ntmp\nworkspace\n1\n1\n") << r.dump();
  // Writes go to the sandbox's own layer: /workspace and /tmp always, the template's own files
  // too when it is idmapped (root inside owns them).
  r = sh(id, "echo w > /workspace/w && echo t > /tmp/t && cat /workspace/w /tmp/t");
  EXPECT_EQ(r["stdout"], "w\nt\n") << r.dump();
  if (idmapped) {
    r = sh(id, "stat -c %u /etc/marker && echo changed > /etc/marker && mkdir /opt && echo n > /opt/new && "
               "rm /bin/ls && cat /etc/marker /opt/new");
    EXPECT_EQ(r["stdout"], "0\nchanged\nn\n") << r.dump();
  }
  // ... and never to the template directory.
  EXPECT_EQ(slurp(dir_ + "/etc/marker"), "template\n");
  EXPECT_TRUE(fs::exists(dir_ + "/bin/ls"));
  EXPECT_FALSE(fs::exists(dir_ + "/opt"));
  EXPECT_FALSE(fs::exists(dir_ + "/workspace"));
  EXPECT_FALSE(fs::exists(dir_ + "/tmp"));
  // The files API sees the same tree.
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/w").body, "w\n");
  // A fork keeps the template and the state; a reset goes back to the template.
  std::string child = call_json("POST", "/v1/sandboxes/" + id + "/fork", nullptr, 201)["id"];
  EXPECT_EQ(call_json("GET", "/v1/sandboxes/" + child, nullptr, 200)["template"], "mini");
  EXPECT_EQ(sh(child, "cat /workspace/w; cat /usr/bin/env 2>&1 | grep -c 'No such'")["stdout"], "w\n1\n");
  call_json("POST", "/v1/sandboxes/" + id + "/reset", nullptr, 200);
  r = sh(id, "cat /etc/marker; ls /workspace; ls /bin/ls");
  EXPECT_EQ(r["stdout"], "template\n/bin/ls\n") << r.dump();
  EXPECT_EQ(call_json("GET", "/v1/sandboxes/" + id, nullptr, 200)["template"], "mini");
  // One-shot run in the template.
  json run = call_json("POST", "/v1/run", {{"language", "sh"}, {"code", "cat /etc/marker"}, {"template", "mini"}}, 200);
  EXPECT_EQ(run["stdout"], "template\n") << run.dump();
  // Unknown templates are a 400 naming it and the known ones.
  auto bad = call("POST", "/v1/sandboxes", R"({"template":"debain"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("unknown template 'debain' (have: host, mini)"), std::string::npos) << bad.body;
  bad = call("POST", "/v1/run", R"({"language":"sh","code":"true","template":"nope"})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  // The host template is unchanged next to it.
  std::string host = create();
  EXPECT_EQ(sh(host, "ls /usr/bin/python3; cat /etc/marker 2>&1 | grep -c 'No such'")["stdout"], "/usr/bin/python3\n1\n");
}

// Startup errors: a template that cannot work stops the daemon with a clear message.
TEST(TemplateOptions, BadTemplatesAreStartupErrors) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string base = "/tmp/tidal-sandbox-template-opts-" + std::to_string(getpid());
  std::error_code ec;
  fs::create_directories(base + "/empty", ec);
  fs::create_directories(base + "/half/debootstrap", ec);
  auto open_with = [&](const std::string& name, const std::string& dir) {
    ManagerOptions o;
    o.root = base + "/root";
    o.templates[name] = dir;
    auto m = SandboxManager::open(o);
    return m ? std::string("opened") : m.status().message();
  };
  EXPECT_EQ(open_with("x", base + "/missing"), "template 'x': " + base + "/missing does not exist (No such file or directory)");
  EXPECT_NE(open_with("x", base + "/empty").find("is not a plausible root filesystem: it has no executable /bin/sh"),
            std::string::npos);
  EXPECT_NE(open_with("x", base + "/half").find("is an unfinished debootstrap"), std::string::npos);
  EXPECT_NE(open_with("x", "/").find("is the host's root filesystem"), std::string::npos);
  EXPECT_NE(open_with("host", base + "/empty").find("template name 'host' is reserved"), std::string::npos);
  EXPECT_NE(open_with("Bad/Name", base + "/empty").find("template name 'Bad/Name' must be"), std::string::npos);
  // Warm pool sizes: for a known template only, and in range.
  ManagerOptions o;
  o.root = base + "/root";
  o.warm_pool_per_template["debain"] = 1;
  auto m = SandboxManager::open(o);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.status().message(), "warm pool size for unknown template 'debain'");
  o.warm_pool_per_template = {{"host", -1}};
  m = SandboxManager::open(o);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.status().message(), "warm pool of template 'host' must be in [0, 4096], got -1");
  fs::remove_all(base, ec);
}

// The Debian template of scripts/make-sandbox-template.sh, when one was built (the default suite
// does not build it: it downloads ~40 MB). TIDAL_SANDBOX_DEBIAN_TEMPLATE (default /tmp/sbx-debian).
class DebianTemplate : public SandboxService {
 protected:
  void SetUp() override {
    const char* env = std::getenv("TIDAL_SANDBOX_DEBIAN_TEMPLATE");
    std::string dir = env ? env : "/tmp/sbx-debian";
    if (!fs::exists(dir + "/etc/tidal-template")) {
      GTEST_SKIP() << "no Debian template at " << dir << " (build one with scripts/make-sandbox-template.sh " << dir
                   << ", or set TIDAL_SANDBOX_DEBIAN_TEMPLATE)";
    }
    templates_["debian"] = dir;
    SandboxService::SetUp();
  }
};

TEST_F(DebianTemplate, Python3RunsInIt) {
  std::string id = create({{"template", "debian"}});
  json r = exec(id, {{"cmd", {"python3", "-c", "import sys, platform; print(sys.version_info[0], platform.freedesktop_os_release()['ID'])"}}});
  EXPECT_EQ(r["stdout"], "3 debian\n") << r.dump();
  r = sh(id, "cat /etc/debian_version >/dev/null && echo ok; pip3 --version >/dev/null 2>&1 || echo no-pip; "
             "echo x > /workspace/mine && echo wrote");
  EXPECT_EQ(r["stdout"], "ok\nno-pip\nwrote\n") << r.dump();
  if (call_json("GET", "/health", nullptr, 200)["templates"][0].value("idmapped", false)) {
    EXPECT_EQ(sh(id, "echo x > /usr/local/bin/mine && echo wrote")["stdout"], "wrote\n");
  }
  json run = call_json("POST", "/v1/run", {{"language", "python"}, {"code", "print(sum(range(10)))"}, {"template", "debian"}}, 200);
  EXPECT_EQ(run["stdout"], "45\n") << run.dump();
}

}  // namespace
}  // namespace tidal::sandbox::testing
