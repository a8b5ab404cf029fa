// Isolation, checked for real from inside sandboxes started over the HTTP API: host files, other
// sandboxes, the daemon, the network, privileges, ptrace, fork bombs, memory hogs, disk fill,
// timeouts and leftovers.
#include <fstream>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

#include "sandbox_test_env.h"

namespace tidal::sandbox::testing {
namespace {

using Isolation = SandboxService;

TEST_F(Isolation, HostFilesAreInvisible) {
  std::string secret = "/tmp/tidal-host-secret-" + std::to_string(getpid());
  std::ofstream(secret) << "top secret\n";
  std::string id = create();
  json r = sh(id, "cat " + secret + "; ls /; cat /etc/passwd; ls /work /root/.ssh /farm 2>&1; cat /proc/1/environ 2>&1 | head -c 100");
  EXPECT_EQ(r["stdout"].get<std::string>().find("top secret"), std::string::npos);
  EXPECT_NE(r["stderr"].get<std::string>().find("No such file"), std::string::npos);
  std::string out = r["stdout"];
  EXPECT_NE(out.find("root:x:0:0"), std::string::npos);        // our /etc/passwd ...
  EXPECT_EQ(out.find("daemon:"), std::string::npos);           // ... not the host's
  EXPECT_NE(out.find("No such file or directory"), std::string::npos);  // /work, /farm absent
  ::unlink(secret.c_str());
}

TEST_F(Isolation, HostUsrIsReadOnlyAndTemplateIsUntouched) {
  std::string id = create();
  json r = sh(id, "touch /usr/bin/evil; echo planted > /etc/passwd; rm -rf /bin/ 2>/dev/null; echo done");
  EXPECT_NE(r["stderr"].get<std::string>().find("Read-only file system"), std::string::npos) << r.dump();
  EXPECT_FALSE(std::ifstream("/usr/bin/evil").good());
  // The template (lower layer) keeps its /etc/passwd; a new sandbox sees the original.
  std::string tmpl = manager_->options().root + "/templates/host/etc/passwd";
  std::ifstream in(tmpl);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "root:x:0:0:root:/root:/bin/bash");
  std::string other = create();
  EXPECT_EQ(sh(other, "head -1 /etc/passwd")["stdout"], "root:x:0:0:root:/root:/bin/bash\n");
}

TEST_F(Isolation, RootInsideIsUnprivileged) {
  std::string id = create();
  json r = sh(id,
              "id -u; grep CapEff /proc/self/status; mount -t tmpfs x /mnt || echo mount-denied; "
              "unshare -U true || echo unshare-denied; chroot / true || echo chroot-denied; "
              "echo x > /proc/sys/kernel/hostname || echo sysctl-denied; hostname x || echo hostname-denied; "
              "head -c 10 /proc/kcore > /dev/null || echo kcore-denied; "
              "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)' 2>/dev/null || echo raw-denied; "
              "cat /proc/1/environ > /dev/null 2>&1 || echo environ-denied; "
              "head -c 1 /proc/1/mem > /dev/null 2>&1 || echo mem-denied; "
              "kill -9 1 && echo killed-init");
  std::string out = r["stdout"];
  EXPECT_EQ(out.substr(0, 2), "0\n");
  EXPECT_NE(out.find("CapEff:\t0000000000000000"), std::string::npos) << out;
  for (const char* denied : {"mount-denied", "unshare-denied", "chroot-denied", "sysctl-denied", "hostname-denied",
                             "kcore-denied", "raw-denied", "environ-denied", "mem-denied"}) {
    EXPECT_NE(out.find(denied), std::string::npos) << denied << "\n" << r.dump();
  }
  EXPECT_EQ(sh(id, "hostname")["stdout"], "sandbox\n");
}

TEST_F(Isolation, SandboxesCannotSeeEachOther) {
  std::string a = create(), b = create();
  // A long-running command in A, and a file.
  ASSERT_EQ(sh(a, "echo mine > /workspace/a.txt")["exit_code"], 0);
  int before = count_host_processes("sleep 6.28318");
  std::thread long_exec([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    (void)c.request("POST", "/v1/sandboxes/" + a + "/exec", R"({"shell":"sleep 6.28318","timeout_s":10})");
  });
  // Counted once the sleep itself runs (the shell that starts it matches too, and may be alone at
  // first on a loaded machine).
  EXPECT_TRUE(wait_for_host_process("sleep 6.28318", 10));  // not ASSERT: long_exec must be joined
  int running = count_host_processes("sleep 6.28318");
  EXPECT_GT(running, before);
  json r = sh(b, "ls /workspace; ps -eo args; cat /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; kill -9 -1; echo end");
  std::string out = r["stdout"];
  EXPECT_EQ(out.find("a.txt"), std::string::npos);
  EXPECT_EQ(out.find("6.28318"), std::string::npos) << out;
  // kill -1 inside B reached nothing of A: A's command is still there.
  EXPECT_EQ(count_host_processes("sleep 6.28318"), running);
  long_exec.join();
}

TEST_F(Isolation, NetworkNoneHasNoNetwork) {
  std::string id = create({{"network", "none"}});
  std::string probe = "import socket\ns=socket.socket()\ns.settimeout(2)\ntry:\n  s.connect(('127.0.0.1'," +
                      std::to_string(server_->port()) + "))\n  print('connected')\nexcept OSError as e:\n  print('failed', e.errno)\n";
  ASSERT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/probe.py", probe).status, 200);
  json r = exec(id, {{"cmd", {"python3", "/workspace/probe.py"}}});
  EXPECT_EQ(r["stdout"].get<std::string>().substr(0, 6), "failed") << r.dump();
  json links = sh(id, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
  EXPECT_EQ(links["stdout"], "lo\n");  // no other interface
}

TEST_F(Isolation, NetworkLoopbackIsPrivate) {
  std::string id = create({{"network", "loopback"}});
  std::string script = R"(import socket, threading
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(1)
port = srv.getsockname()[1]
def serve():
    c, _ = srv.accept(); c.sendall(b'pong'); c.close()
threading.Thread(target=serve).start()
c = socket.create_connection(('127.0.0.1', port)); print(c.recv(4).decode())
h = socket.socket(); h.settimeout(2)
try:
    h.connect(('127.0.0.1', HOSTPORT)); print('host reachable')
except OSError:
    print('host unreachable')
)";
  script.replace(script.find("HOSTPORT"), 8, std::to_string(server_->port()));
  ASSERT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/lo.py", script).status, 200);
  json r = exec(id, {{"cmd", {"python3", "/workspace/lo.py"}}});
  EXPECT_EQ(r["stdout"], "pong\nhost unreachable\n") << r.dump();
}

// A "remote" test host for egress: a network namespace made by the test, reached from the host by
// a veth pair, serving one TCP greeting. Its addresses (198.18.N.2, and 10.254.N.2 in a private
// range the sandboxes must not reach) are routed to that veth only, so no packet leaves the machine.
class TestHost {
 public:
  explicit TestHost(int n) : n_(n) {
    ns_ = "tidaltest" + std::to_string(getpid());
    veth_ = "tt" + std::to_string(getpid() % 100000);
    std::string a = "198.18." + std::to_string(n) + ".", p = "10.254." + std::to_string(n) + ".";
    ok_ = sh("ip netns add " + ns_) && sh("ip link add " + veth_ + " type veth peer name eth0 netns " + ns_) &&
          sh("ip addr add " + a + "1/30 dev " + veth_) && sh("ip link set " + veth_ + " up") &&
          sh("ip route add " + p + "0/30 dev " + veth_) &&
          sh("ip -n " + ns_ + " addr add " + a + "2/30 dev eth0") && sh("ip -n " + ns_ + " addr add " + p + "2/32 dev eth0") &&
          sh("ip -n " + ns_ + " link set eth0 up") && sh("ip -n " + ns_ + " link set lo up") &&
          sh("ip -n " + ns_ + " route add default via " + a + "1");
  }
  ~TestHost() {
    if (server_.joinable()) server_.join();
    sh("ip link del " + veth_);
    sh("ip netns del " + ns_);
  }
  bool ok() const { return ok_; }
  std::string public_ip() const { return "198.18." + std::to_string(n_) + ".2"; }
  std::string private_ip() const { return "10.254." + std::to_string(n_) + ".2"; }
  // The route to `ip` goes through our veth (so a test connection never leaves the machine).
  bool routed_locally(const std::string& ip) const {
    FILE* f = popen(("ip route get " + ip).c_str(), "r");
    char buf[512] = {0};
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f) pclose(f);
    return std::string(buf, n).find("dev " + veth_) != std::string::npos;
  }
  // Listens on `ip`:port inside the namespace and greets up to `accepts` clients (one thread).
  void serve(const std::string& ip, int port, int accepts) {
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    server_ = std::thread([=, this] {
      int nsfd = open(("/var/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC);
      char ok = setns(nsfd, CLONE_NEWNET) == 0 ? 1 : 0;
      close(nsfd);
      int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(port));
      inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
      ok = ok && bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(s, 8) == 0;
      (void)!write(ready[1], &ok, 1);
      for (int i = 0; ok && i < accepts; ++i) {
        pollfd p{s, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) break;
        int c = accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
        const char msg[] = "hello from outside\n";
        (void)!write(c, msg, sizeof(msg) - 1);
        close(c);
      }
      close(s);
    });
    char ok = 0;
    ASSERT_EQ(read(ready[0], &ok, 1), 1);
    close(ready[0]);
    close(ready[1]);
    ASSERT_EQ(ok, 1) << "test server did not start";
  }

 private:
  static bool sh(const std::string& cmd) { return std::system((cmd + " 2>/dev/null").c_str()) == 0; }
  int n_;
  std::string ns_, veth_;
  bool ok_ = false;
  std::thread server_;
};

TEST_F(Isolation, EgressReachesOutsideButNotTheHostLanOrOtherSandboxes) {
  if (std::system("command -v nft >/dev/null && command -v ip >/dev/null") != 0) GTEST_SKIP() << "needs ip and nft";
  TestHost remote(getpid() % 200);
  ASSERT_TRUE(remote.ok()) << "cannot build the test network namespace";
  ASSERT_TRUE(remote.routed_locally(remote.public_ip()));
  ASSERT_TRUE(remote.routed_locally(remote.private_ip()));
  remote.serve("0.0.0.0", 18765, 2);
  json created = call_json("POST", "/v1/sandboxes", {{"network", "egress"}}, 201);
  ASSERT_TRUE(created.contains("id"));
  std::string e = created["id"];
  std::string other = create({{"network", "egress"}});
  std::string none = create();
  auto connect = [&](const std::string& id, const std::string& ip, int port) {
    return sh(id, "python3 -c \"import socket\ntry:\n s = socket.create_connection(('" + ip + "', " + std::to_string(port) +
                      "), timeout=0.5); print(s.recv(100).decode().strip())\nexcept OSError as e: print('blocked', type(e).__name__)\"")["stdout"]
        .get<std::string>();
  };
  EXPECT_EQ(connect(e, remote.public_ip(), 18765), "hello from outside\n");
  // Not the LAN (a private range, though routed), not the host (its API port), not another sandbox.
  EXPECT_EQ(connect(e, remote.private_ip(), 18765).rfind("blocked", 0), 0u);
  std::string other_ip = sh(other, "python3 -c \"import socket,fcntl,struct; s=socket.socket(); print(socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, struct.pack('256s', b'eth0'))[20:24]))\"")["stdout"];
  ASSERT_FALSE(other_ip.empty());
  other_ip.pop_back();
  std::string host_ip = other_ip.substr(0, other_ip.rfind('.') + 1) + std::to_string(std::stoi(other_ip.substr(other_ip.rfind('.') + 1)) - 1);
  EXPECT_EQ(connect(e, host_ip, server_->port()).rfind("blocked", 0), 0u) << host_ip;
  EXPECT_EQ(connect(e, "127.0.0.1", server_->port()).rfind("blocked", 0), 0u);
  std::thread listener([&] {  // a listener in the other sandbox, for the duration of one exec
    http::HttpClient c("127.0.0.1", server_->port());
    (void)c.request("POST", "/v1/sandboxes/" + other + "/exec",
                    json{{"shell", "python3 -c \"import socket; s=socket.socket(); s.bind(('0.0.0.0', 18766)); s.listen(); s.settimeout(3)\ntry: s.accept()\nexcept OSError: pass\""}}.dump());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(connect(e, other_ip, 18766).rfind("blocked", 0), 0u);
  listener.join();
  // Network "none" has no route out at all; egress works again after a fork (a new veth).
  EXPECT_EQ(connect(none, remote.public_ip(), 18765).rfind("blocked", 0), 0u);
  std::string child = call_json("POST", "/v1/sandboxes/" + e + "/fork", nullptr, 201)["id"];
  EXPECT_EQ(connect(child, remote.public_ip(), 18765), "hello from outside\n");
}

TEST_F(Isolation, ForkBombIsStoppedByThePidsLimit) {
  if (!manager_->cgroups_enabled()) GTEST_SKIP() << "no cgroups: " << manager_->cgroup_description();
  std::string id = create({{"pids", 32}});
  std::string bomb = R"(import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print('fork failed after', n, e.errno, flush=True)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    n += 1
)";
  ASSERT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/bomb.py", bomb).status, 200);
  auto t0 = std::chrono::steady_clock::now();
  json r = exec(id, {{"cmd", {"python3", "/workspace/bomb.py"}}, {"timeout_s", 20}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  std::string out = r["stdout"];
  ASSERT_EQ(out.rfind("fork failed after", 0), 0u) << r.dump();
  int n = std::stoi(out.substr(18));
  EXPECT_LT(n, 32);
  EXPECT_EQ(r["exit_code"], 0);
  // The sleepers died with the exec, and the sandbox is healthy.
  EXPECT_EQ(sh(id, "echo alive")["stdout"], "alive\n");
  auto sb = manager_->get(id);
  ASSERT_TRUE(sb.has_value());
  EXPECT_EQ(count_my_zombies(), 0);
  // A classic shell fork bomb ends (at the latest at its timeout: its shell may also give up when
  // fork fails) and leaves the sandbox usable.
  json shell_bomb = sh(id, "b() { b | b & }; b", 3);
  EXPECT_LT(shell_bomb["wall_ms"].get<int>(), 6000) << shell_bomb.dump();
  EXPECT_EQ(sh(id, "echo still alive")["stdout"], "still alive\n");
}

TEST_F(Isolation, MemoryHogIsOomKilled) {
  if (!manager_->cgroups_enabled()) GTEST_SKIP() << "no cgroups: " << manager_->cgroup_description();
  std::string id = create({{"memory_mb", 64}});
  EXPECT_EQ(sh(id, "cat /proc/self/oom_score_adj")["stdout"], "500\n");  // commands are the OOM victims
  json r = exec(id, {{"cmd", {"python3", "-c", "x = bytearray(512 << 20); x[::4096] = b'x' * len(x[::4096]); print('survived')"}},
                     {"timeout_s", 20}});
  EXPECT_EQ(r["stdout"], "");
  EXPECT_TRUE(r["oom_killed"].get<bool>()) << r.dump();
  EXPECT_EQ(r["signal"], 9);
  EXPECT_EQ(sh(id, "echo fine")["stdout"], "fine\n");
  json info = call_json("GET", "/v1/sandboxes/" + id, nullptr, 200);
  EXPECT_GE(info["oom_kills"].get<int>(), 1);
}

// The daemon and other sandboxes' processes, named by their host pids, cannot be signalled, traced
// or read from inside; ptrace is denied even on the sandbox's own processes; filling the disk
// stops at the sandbox's disk_mb. Afterwards the daemon and another sandbox still work.
TEST_F(Isolation, DaemonAndNeighboursCannotBeSignalledTracedOrFilledUp) {
  std::string a = create({{"disk_mb", 16}}), b = create();
  // A command in B, with its host pid.
  std::thread long_exec([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    (void)c.request("POST", "/v1/sandboxes/" + b + "/exec", R"({"shell":"sleep 2.71828","timeout_s":5})");
  });
  int neighbour = -1;
  for (int i = 0; i < 200 && neighbour < 0; ++i) {
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::ifstream cmd(e.path() / "cmdline");
      std::string args((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
      if (args.find("2.71828") != std::string::npos && args.rfind("sleep", 0) == 0) neighbour = std::stoi(name);
    }
    if (neighbour < 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(neighbour, 0);
  const std::string daemon = std::to_string(getpid()), other = std::to_string(neighbour);
  json r = sh(a, "for p in " + daemon + " " + other + "; do kill -9 $p 2>/dev/null || echo kill-$p-denied; "
                 "kill -STOP $p 2>/dev/null || echo stop-$p-denied; "
                 "cat /proc/$p/environ > /dev/null 2>&1 || echo read-$p-denied; done");
  std::string out = r["stdout"];
  for (const auto& p : {daemon, other}) {
    for (const char* what : {"kill-", "stop-", "read-"}) {
      EXPECT_NE(out.find(what + p + "-denied"), std::string::npos) << what << p << "\n" << r.dump();
    }
  }
  // The neighbour's command is still there, and not stopped.
  EXPECT_EQ(::kill(neighbour, 0), 0);
  std::ifstream stat("/proc/" + other + "/stat");
  std::string pid_field, comm, state;
  stat >> pid_field >> comm >> state;
  EXPECT_NE(state, "T") << "the neighbour was stopped";
  // ptrace (attach to a process of the same sandbox, and PTRACE_TRACEME) fails: the seccomp filter.
  std::string tracer = "import ctypes, os, subprocess\n"
                       "libc = ctypes.CDLL(None, use_errno=True)\n"
                       "p = subprocess.Popen(['sleep', '5'])\n"
                       "print('attach', libc.ptrace(16, p.pid, 0, 0), 'traceme', libc.ptrace(0, 0, 0, 0))\n"
                       "p.kill()\n";
  ASSERT_EQ(call("PUT", "/v1/sandboxes/" + a + "/files?path=/workspace/trace.py", tracer).status, 200);
  EXPECT_EQ(exec(a, {{"cmd", {"python3", "/workspace/trace.py"}}})["stdout"], "attach -1 traceme -1\n");
  // Disk fill: stops at disk_mb with ENOSPC; the sandbox recovers once the file is gone.
  json fill = sh(a, "head -c 100000000 /dev/zero > /workspace/fill; echo rc=$?; du -sm /workspace/fill | cut -f1");
  std::string filled = fill["stdout"];
  EXPECT_NE(filled.find("rc=1"), std::string::npos) << fill.dump();
  EXPECT_NE(fill["stderr"].get<std::string>().find("No space left"), std::string::npos) << fill.dump();
  EXPECT_LE(std::stoi(filled.substr(filled.find('\n') + 1)), 16) << fill.dump();
  EXPECT_EQ(sh(a, "rm /workspace/fill && echo ok > /workspace/x && cat /workspace/x")["stdout"], "ok\n");
  // The daemon and B still serve.
  long_exec.join();
  EXPECT_EQ(call_json("GET", "/health", nullptr, 200)["status"], "ok");
  EXPECT_EQ(sh(b, "echo fine")["stdout"], "fine\n");
}

TEST_F(Isolation, TimeoutKillsTheWholeTreeAndLeavesNothing) {
  std::string id = create();
  auto t0 = std::chrono::steady_clock::now();
  json r = sh(id, "sleep 271.828 & (sleep 271.828 &) ; setsid sleep 271.828 & sleep 271.828", 1);
  auto wall = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(r["timed_out"].get<bool>()) << r.dump();
  EXPECT_EQ(r["signal"], 9);
  EXPECT_LT(wall, std::chrono::seconds(4));
  EXPECT_EQ(count_host_processes("sleep 271.828"), 0);
  EXPECT_EQ(count_my_zombies(), 0);
  // Background processes do not outlive a normal exec either.
  json bg = sh(id, "sleep 314.159 > /dev/null 2>&1 & echo started");
  EXPECT_EQ(bg["stdout"], "started\n");
  EXPECT_FALSE(bg["timed_out"].get<bool>());
  EXPECT_EQ(bg["leftover_processes"], 1) << bg.dump();  // reported, then killed
  EXPECT_EQ(sh(id, "true")["leftover_processes"], 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(count_host_processes("sleep 314.159"), 0);
}

TEST_F(Isolation, DestroyLeavesNoProcessesMountsOrCgroups) {
  const std::string root = manager_->options().root;
  int mounts_before = count_mounts_under(root);
  auto count_fds = [] {
    int n = 0;
    for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n += e.exists() ? 1 : 0;
    return n;
  };
  // Warm up (lazily opened descriptors: client connection, server worker state), then count.
  std::string warm = create();
  sh(warm, "true");
  call("DELETE", "/v1/sandboxes/" + warm);
  int fds_before = count_fds();
  for (int i = 0; i < 20; ++i) {
    std::string id = create();
    std::thread t([&, id] {
      http::HttpClient c("127.0.0.1", server_->port());
      (void)c.request("POST", "/v1/sandboxes/" + id + "/exec", R"({"shell":"sleep 161.8","timeout_s":30})");
    });
    ASSERT_EQ(sh(id, "echo hi")["stdout"], "hi\n");
    ASSERT_EQ(call("DELETE", "/v1/sandboxes/" + id).status, 200);
    t.join();  // the running exec ended with the sandbox
  }
  EXPECT_EQ(count_host_processes("sleep 161.8"), 0);
  EXPECT_EQ(count_my_zombies(), 0);
  EXPECT_EQ(count_mounts_under(root), mounts_before);
  // No leaked pidfd, pipe, socket or cgroup file (the server closes its end of the finished
  // connections asynchronously: let that settle).
  EXPECT_EQ(settled_count(count_fds, fds_before), fds_before);
  EXPECT_EQ(manager_->n_live(), 0u);
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(root + "/sandboxes", ec));
}

}  // namespace
}  // namespace tidal::sandbox::testing

namespace tidal::sandbox::testing {
namespace {

// A daemon that dies without cleaning up leaves mounts and cgroups; the next one with the same
// root finds and removes them, and the dead daemon's sandbox processes died with it.
TEST(Restart, LeftoversOfACrashedDaemonAreCleaned) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  std::string root = "/tmp/tidal-sandbox-restart-" + std::to_string(getpid());
  pid_t pid = fork();
  if (pid == 0) {
    ManagerOptions opts;
    opts.root = root;
    auto m = SandboxManager::open(opts);
    if (!m) _exit(1);
    for (int i = 0; i < 3; ++i) {
      auto sb = (*m)->create(SandboxSpec{});
      if (sb && i == 0 && (*m)->cgroups_enabled()) (void)(*sb)->pause();  // frozen: only cleanup can kill it
      if (!sb) {
        fprintf(stderr, "create failed: %s\n", sb.status().to_string().c_str());
        _exit(2);
      }
    }
    _exit(0);  // "crash": no destructor runs
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  std::string canonical = std::filesystem::canonical(root).string();
  EXPECT_EQ(count_mounts_under(canonical + "/sandboxes/"), 6);  // tmpfs + overlay each
  // The running sandboxes died with their daemon (the frozen one waits for the thaw).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_LE(count_orphans_named("tidal-init"), 1);
  {
    ManagerOptions opts;
    opts.root = root;
    auto m = SandboxManager::open(opts);
    ASSERT_TRUE(m.has_value()) << m.status().to_string();
    EXPECT_EQ(count_mounts_under(canonical + "/sandboxes/"), 0);
    EXPECT_TRUE(std::filesystem::is_empty(canonical + "/sandboxes"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(count_orphans_named("tidal-init"), 0);  // the frozen one too
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace tidal::sandbox::testing
