// The sandbox HTTP API: exec semantics, files, bad input, leases, fork/reset, one-shot run,
// streaming, concurrency, health and metrics.
#include <sched.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <functional>
#include <thread>

#include "sandbox_test_env.h"

namespace tidal::sandbox::testing {
namespace {

using Api = SandboxService;

TEST_F(Api, ExecSemantics) {
  std::string id = create({{"env", {{"FROM_SANDBOX", "s"}}}, {"labels", {{"job", "t1"}}}});
  ASSERT_FALSE(id.empty());
  json r = exec(id, {{"cmd", {"sh", "-c", "echo out; echo err >&2; cat; pwd; echo $FROM_SANDBOX$FROM_EXEC; exit 3"}},
                     {"stdin", "piped\n"}, {"cwd", "/tmp"}, {"env", {{"FROM_EXEC", "e"}}}});
  EXPECT_EQ(r["exit_code"], 3);
  EXPECT_EQ(r["signal"], 0);
  EXPECT_EQ(r["stdout"], "out\npiped\n/tmp\nse\n");
  EXPECT_EQ(r["stderr"], "err\n");
  EXPECT_FALSE(r["timed_out"].get<bool>());
  EXPECT_GE(r["wall_ms"].get<int>(), 0);

  json missing = exec(id, {{"cmd", {"no-such-command"}}});
  EXPECT_EQ(missing["exit_code"], 127);
  EXPECT_NE(missing["stderr"].get<std::string>().find("No such file or directory"), std::string::npos);
  json bad_cwd = exec(id, {{"cmd", {"true"}}, {"cwd", "/nope"}});
  EXPECT_EQ(bad_cwd["exit_code"], 127);
  EXPECT_NE(bad_cwd["stderr"].get<std::string>().find("chdir failed for '/nope'"), std::string::npos);

  json signalled = sh(id, "kill -SEGV $$");
  EXPECT_EQ(signalled["exit_code"], -1);
  EXPECT_EQ(signalled["signal"], 11);

  json big = exec(id, {{"shell", "head -c 100000 /dev/zero | tr '\\0' a"}, {"max_output_bytes", 1000}});
  EXPECT_EQ(big["stdout"].get<std::string>().size(), 1000u);
  EXPECT_TRUE(big["truncated"].get<bool>());
  EXPECT_EQ(big["exit_code"], 0);

  // A large stdin the command never reads: no SIGPIPE for the daemon, a normal result.
  json unread = exec(id, {{"cmd", {"true"}}, {"stdin", std::string(512 << 10, 'x')}});
  EXPECT_EQ(unread["exit_code"], 0);

  json cpu = exec(id, {{"cmd", {"python3", "-c", "sum(range(3_000_000))"}}});
  EXPECT_GT(cpu["cpu_ms"].get<int>(), 10);

  // State persists between execs.
  sh(id, "echo 42 > /workspace/state");
  EXPECT_EQ(sh(id, "cat /workspace/state")["stdout"], "42\n");
}

TEST_F(Api, ListGetDelete) {
  std::string a = create({{"labels", {{"job", "x"}}}}), b = create({{"labels", {{"job", "y"}}}});
  json all = call_json("GET", "/v1/sandboxes", nullptr, 200);
  EXPECT_EQ(all["sandboxes"].size(), 2u);
  json xs = call_json("GET", "/v1/sandboxes?label=job%3Dx", nullptr, 200);
  ASSERT_EQ(xs["sandboxes"].size(), 1u);
  EXPECT_EQ(xs["sandboxes"][0]["id"], a);
  json info = call_json("GET", "/v1/sandboxes/" + b, nullptr, 200);
  EXPECT_EQ(info["labels"]["job"], "y");
  EXPECT_EQ(info["network"], "none");
  EXPECT_TRUE(info["alive"].get<bool>());
  call_json("DELETE", "/v1/sandboxes/" + b, nullptr, 200);
  call_json("GET", "/v1/sandboxes/" + b, nullptr, 404);
  call_json("DELETE", "/v1/sandboxes/" + b, nullptr, 404);
}

TEST_F(Api, BadInputIsAClear4xx) {
  std::string id = create();
  auto message = [](const json& j) { return j["error"]["message"].get<std::string>(); };
  EXPECT_NE(message(json::parse(call("POST", "/v1/sandboxes", "{oops").body)).find("not valid JSON"), std::string::npos);
  EXPECT_EQ(call("POST", "/v1/sandboxes", "{oops").status, 400);
  EXPECT_NE(message(call_json("POST", "/v1/sandboxes", {{"memory_mb", 1e9}}, 400)).find("'memory_mb' must be in"), std::string::npos);
  EXPECT_NE(message(call_json("POST", "/v1/sandboxes", {{"pids", -1}}, 400)).find("'pids'"), std::string::npos);
  EXPECT_NE(message(call_json("POST", "/v1/sandboxes", {{"cpu_millis", "lots"}}, 400)).find("must be an integer"), std::string::npos);
  EXPECT_NE(message(call_json("POST", "/v1/sandboxes", {{"netwrok", "none"}}, 400)).find("unknown field 'netwrok'"), std::string::npos);
  EXPECT_NE(message(call_json("POST", "/v1/sandboxes", {{"network", "wifi"}}, 400)).find("none, loopback, egress"), std::string::npos);
  call_json("POST", "/v1/sandboxes", {{"template", "ubuntu"}}, 400);
  call_json("POST", "/v1/sandboxes", {{"lease", "lease-nope"}}, 404);
  // Exec.
  call_json("POST", "/v1/sandboxes/sb-unknown/exec", {{"cmd", {"true"}}}, 404);
  call_json("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", {"true"}}, {"shell", "true"}}, 400);
  call_json("POST", "/v1/sandboxes/" + id + "/exec", json::object(), 400);
  call_json("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", "true"}}, 400);  // not an array
  call_json("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", {"true"}}, {"timeout_s", 0}}, 400);
  call_json("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", {"true"}}, {"timeout_s", 1e12}}, 400);
  call_json("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", {"true"}}, {"cwd", "relative"}}, 400);
  EXPECT_EQ(call("POST", "/v1/sandboxes/" + id + "/exec", "[1,2]").status, 400);
  // Files.
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id + "/files").status, 400);  // no path
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id + "/files?path=/../../etc/passwd").status, 400);
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=relative.txt", "x").status, 400);
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/none").status, 404);
  EXPECT_EQ(call("GET", "/v1/sandboxes/sb-unknown/files?path=/").status, 404);
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/x&mode=999", "x").status, 400);
  // Oversized body (the test server allows 1 MiB).
  auto big = call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/big", std::string(2 << 20, 'x'));
  EXPECT_EQ(big.status, 413);
  // Unknown routes and methods.
  EXPECT_EQ(call("GET", "/v2/nothing").status, 404);
  EXPECT_EQ(call("PATCH", "/v1/sandboxes/" + id).status, 405);
  // The service is still fine.
  EXPECT_EQ(sh(id, "echo ok")["stdout"], "ok\n");
}

TEST_F(Api, FilesRoundTripAndOwnership) {
  std::string id = create();
  std::string binary("\x00\x01\xff\xfe payload", 12);
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/dir/data.bin", binary).status, 200);
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/run.sh&mode=755", "#!/bin/sh\necho ran\n").status, 200);
  auto got = call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/dir/data.bin");
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, binary);
  EXPECT_EQ(got.headers["content-type"], "application/octet-stream");
  // The sandbox sees the files as its root's, and can run and change them.
  EXPECT_EQ(sh(id, "/workspace/run.sh; stat -c '%u %a' /workspace/dir/data.bin; echo more >> /workspace/dir/data.bin && echo appended")["stdout"],
            "ran\n0 644\nappended\n");
  // What the sandbox writes, the API reads.
  sh(id, "mkdir -p /workspace/out && echo result > /workspace/out/r.txt");
  json listing = call_json("GET", "/v1/sandboxes/" + id + "/files?path=/workspace", nullptr, 200);
  std::vector<std::string> names;
  for (const auto& e : listing["entries"]) names.push_back(e["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"dir", "out", "run.sh"}));
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/out/r.txt").body, "result\n");
  // Symlinks planted by the sandbox cannot lead the daemon out.
  sh(id, "ln -s / /workspace/rootlink; ln -s /proc/1/root /workspace/proclink; ln -s /etc/passwd /workspace/pw");
  auto via_dir = call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/rootlink/etc/passwd");
  EXPECT_EQ(via_dir.status, 200);
  EXPECT_EQ(via_dir.body.find("daemon:"), std::string::npos);  // the sandbox's passwd, not the host's
  EXPECT_NE(call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/proclink/etc/hostname").status, 200);
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/pw").status, 400);  // final symlink refused
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + id + "/files?path=/workspace/rootlink/usr/evil", "x").status, 200);
  EXPECT_FALSE(std::ifstream("/usr/evil").good());
  // Delete.
  EXPECT_EQ(call("DELETE", "/v1/sandboxes/" + id + "/files?path=/workspace/out").status, 400);  // not empty
  EXPECT_EQ(call("DELETE", "/v1/sandboxes/" + id + "/files?path=/workspace/out&recursive=1").status, 200);
  EXPECT_EQ(sh(id, "ls /workspace/out 2>&1 || echo gone")["stdout"].get<std::string>().find("gone") != std::string::npos, true);
}

TEST_F(Api, TarUploadAndDownload) {
  std::string a = create(), b = create({{"disk_mb", 4}});
  // GNU tar inside the sandbox makes the archives: a tree with a symlink, packed plain and gzipped.
  sh(a, "mkdir -p /workspace/proj/src && printf '#!/bin/sh\\necho 1\\n' > /workspace/proj/src/m.py && chmod 755 /workspace/proj/src/m.py"
        " && ln -s src/m.py /workspace/proj/main && tar -C /workspace/proj -czf /tmp/p.tgz .");
  auto tgz = call("GET", "/v1/sandboxes/" + a + "/files?path=/tmp/p.tgz");
  ASSERT_EQ(tgz.status, 200);
  json up = call_json("PUT", "/v1/sandboxes/" + b + "/archive?path=/workspace/up", nullptr, 400);  // empty body
  auto put = call("PUT", "/v1/sandboxes/" + b + "/archive?path=/workspace/up", tgz.body);
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(json::parse(put.body)["bytes"], 17);
  EXPECT_EQ(sh(b, "cd /workspace/up && ./main; stat -c '%a %U' src/m.py; readlink main")["stdout"],
            "1\n755 root\nsrc/m.py\n");
  // Download: a tar that GNU tar reads back.
  auto tar = call("GET", "/v1/sandboxes/" + b + "/archive?path=/workspace/up");
  ASSERT_EQ(tar.status, 200);
  EXPECT_EQ(tar.headers["content-type"], "application/x-tar");
  ASSERT_EQ(call("PUT", "/v1/sandboxes/" + a + "/files?path=/tmp/back.tar", tar.body).status, 200);
  EXPECT_EQ(sh(a, "tar -tf /tmp/back.tar | sort | tr '\\n' ' '")["stdout"], "main src/ src/m.py ");
  auto gz = call("GET", "/v1/sandboxes/" + b + "/archive?path=/workspace/up&gzip=1");
  EXPECT_EQ(gz.headers["content-type"], "application/gzip");
  // Hostile archives made by GNU tar: a symlink out, an absolute name, '..'; all 400, nothing written.
  sh(a, "cd /tmp && ln -s /etc evil && tar -cf evil.tar evil && tar -cPf abs.tar /etc/hostname"
        " && mkdir -p d && cd d && tar -cPf ../dots.tar ../evil.tar");
  for (const char* name : {"evil", "abs", "dots"}) {
    auto bad = call("GET", "/v1/sandboxes/" + a + "/files?path=/tmp/" + std::string(name) + ".tar");
    auto r = call("PUT", "/v1/sandboxes/" + b + "/archive?path=/workspace/bad", bad.body);
    EXPECT_EQ(r.status, 400) << name << ": " << r.body;
  }
  EXPECT_EQ(sh(b, "ls /workspace")["stdout"], "up\n");  // not even the target directory was made
  // Bigger than the sandbox's disk (4 MiB): refused from the headers.
  sh(a, "head -c 5000000 /dev/zero > /tmp/z && tar -C /tmp -czf /tmp/z.tgz z");
  auto big = call("GET", "/v1/sandboxes/" + a + "/files?path=/tmp/z.tgz");
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + b + "/archive?path=/workspace", big.body).status, 429);
  // Bad targets.
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + b + "/archive?path=/../x", tar.body).status, 400);
  EXPECT_EQ(call("PUT", "/v1/sandboxes/" + b + "/archive", tar.body).status, 400);
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + b + "/archive?path=/nope").status, 404);
  EXPECT_EQ(call("GET", "/v1/sandboxes/sb-nope/archive?path=/").status, 404);
}

TEST_F(Api, LeasesExpireWithoutHeartbeat) {
  json lease = call_json("POST", "/v1/leases", {{"ttl_s", 1.5}}, 201);
  std::string lid = lease["id"];
  std::string kept = create({{"lease", lid}});
  call_json("POST", "/v1/leases/" + lid + "/heartbeat", nullptr, 200);  // creates may be slow under load
  std::string other = create();
  // Heartbeats keep it alive past its ttl (6 x 300 ms > 1.5 s).
  for (int i = 0; i < 6; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    call_json("POST", "/v1/leases/" + lid + "/heartbeat", nullptr, 200);
  }
  call_json("GET", "/v1/sandboxes/" + kept, nullptr, 200);
  // Stop heartbeating: the lease and its sandboxes go (within the ttl plus a sweep); others stay.
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    gone = call("GET", "/v1/sandboxes/" + kept).status == 404;
  }
  EXPECT_TRUE(gone);
  call_json("GET", "/v1/sandboxes/" + kept, nullptr, 404);
  call_json("POST", "/v1/leases/" + lid + "/heartbeat", nullptr, 404);
  call_json("GET", "/v1/sandboxes/" + other, nullptr, 200);
  // Release destroys at once.
  std::string lid2 = call_json("POST", "/v1/leases", {{"ttl_s", 60}}, 201)["id"];
  std::string s2 = create({{"lease", lid2}});
  call_json("DELETE", "/v1/leases/" + lid2, nullptr, 200);
  call_json("GET", "/v1/sandboxes/" + s2, nullptr, 404);
}

TEST_F(Api, SandboxTimeoutDestroysIt) {
  std::string id = create({{"timeout_s", 1}});
  call_json("GET", "/v1/sandboxes/" + id, nullptr, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  call_json("GET", "/v1/sandboxes/" + id, nullptr, 404);
}

// CPU fair share per lease: lease A runs 1 busy sandbox, lease B 4, all pinned to one CPU. Each
// lease is one cgroup level with the same weight, so they split that CPU about evenly (without the
// lease level, A would get 1/5). Measured from the leases' cgroup CPU time (GET /v1/leases/{id}),
// not wall time, so other load on the machine slows both alike.
TEST_F(Api, LeasesShareTheCpuEvenlyWhateverTheirSandboxCount) {
  if (!manager_->cgroups_enabled()) GTEST_SKIP() << "no cgroups: " << manager_->cgroup_description();
  cpu_set_t mask;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mask), &mask), 0);
  int cpu = 0;
  while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &mask)) ++cpu;
  std::string a = call_json("POST", "/v1/leases", {{"ttl_s", 60}}, 201)["id"];
  std::string b = call_json("POST", "/v1/leases", {{"ttl_s", 60}}, 201)["id"];
  std::vector<std::string> ids = {create({{"lease", a}})};
  for (int i = 0; i < 4; ++i) ids.push_back(create({{"lease", b}}));
  json lease_a = call_json("GET", "/v1/leases/" + a, nullptr, 200);
  EXPECT_EQ(lease_a["sandboxes"], 1);
  EXPECT_EQ(call_json("GET", "/v1/leases/" + b, nullptr, 200)["sandboxes"], 4);
  const std::string spin = "exec taskset -c " + std::to_string(cpu) + " sh -c 'while :; do :; done'";
  std::vector<std::thread> spinners;
  for (const auto& id : ids) {
    spinners.emplace_back([&, id] {
      http::HttpClient c("127.0.0.1", server_->port());
      (void)c.request("POST", "/v1/sandboxes/" + id + "/exec", json{{"shell", spin}, {"timeout_s", 3}}.dump());
    });
  }
  auto cpu_ms = [&](const std::string& lease) {
    return call_json("GET", "/v1/leases/" + lease, nullptr, 200).value("cpu_ms", int64_t{0});
  };
  // Let every spinner start, then measure a window while all five run.
  for (int i = 0; i < 300; ++i) {
    int running = 0;
    for (const auto& id : ids) running += manager_->get(id).value()->info().execs_running > 0;
    if (running == 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The same split seen from the sandboxes' own groups (their cpu_ms): A's one sandbox vs B's four.
  auto sandbox_ms = [&](size_t from, size_t to) {
    int64_t ms = 0;
    for (size_t i = from; i < to; ++i) ms += manager_->get(ids[i]).value()->info().cpu_ms;
    return ms;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t a0 = cpu_ms(a), b0 = cpu_ms(b), sa0 = sandbox_ms(0, 1), sb0 = sandbox_ms(1, 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  int64_t da = cpu_ms(a) - a0, db = cpu_ms(b) - b0, sa = sandbox_ms(0, 1) - sa0, sb = sandbox_ms(1, 5) - sb0;
  for (auto& t : spinners) t.join();
  auto share = [](int64_t x, int64_t y) { return static_cast<double>(x) / static_cast<double>(std::max<int64_t>(1, x + y)); };
  std::printf("[ cpu ] lease A (1 sandbox) %lld ms, lease B (4 sandboxes) %lld ms: A's share %.2f "
              "(from the sandboxes' groups: %lld / %lld ms, %.2f)\n",
              static_cast<long long>(da), static_cast<long long>(db), share(da, db), static_cast<long long>(sa),
              static_cast<long long>(sb), share(sa, sb));
  EXPECT_GT(da + db, 300) << "the spinners hardly ran";
  EXPECT_GE(share(da, db), 0.3);
  EXPECT_LE(share(da, db), 0.7);
  EXPECT_GE(share(sa, sb), 0.3);
  EXPECT_LE(share(sa, sb), 0.7);
  // CPU time outlives the sandboxes (kept per lease until it ends); unknown leases are 404.
  for (const auto& id : ids) call_json("DELETE", "/v1/sandboxes/" + id, nullptr, 200);
  EXPECT_GE(cpu_ms(a), a0 + da);
  EXPECT_EQ(call_json("GET", "/v1/leases/" + a, nullptr, 200)["sandboxes"], 0);
  call_json("DELETE", "/v1/leases/" + a, nullptr, 200);
  call_json("GET", "/v1/leases/" + a, nullptr, 404);
}

TEST_F(Api, ForkCopiesStateAndResetRestoresTemplate) {
  std::string a = create({{"labels", {{"k", "v"}}}});
  sh(a, "echo parent > /workspace/f; rm /etc/hostname; mkdir -p /opt/x && echo y > /opt/x/y");
  json forked = call_json("POST", "/v1/sandboxes/" + a + "/fork", nullptr, 201);
  std::string b = forked["id"];
  EXPECT_NE(a, b);
  EXPECT_EQ(forked["labels"]["k"], "v");
  EXPECT_EQ(sh(b, "cat /workspace/f /opt/x/y; ls /etc/hostname 2>&1 | grep -c 'No such'")["stdout"], "parent\ny\n1\n");
  sh(b, "echo child > /workspace/f");
  EXPECT_EQ(sh(a, "cat /workspace/f")["stdout"], "parent\n");
  json reset = call_json("POST", "/v1/sandboxes/" + a + "/reset", nullptr, 200);
  EXPECT_EQ(reset["id"], a);
  EXPECT_EQ(sh(a, "ls /workspace | wc -l; cat /etc/hostname")["stdout"], "0\nsandbox\n");
  EXPECT_EQ(sh(b, "cat /workspace/f")["stdout"], "child\n");
  call_json("POST", "/v1/sandboxes/sb-nope/fork", nullptr, 404);
}

TEST_F(Api, ForkIsCopyOnWriteAndBranchesDiverge) {
  const std::string root = manager_->options().root;
  int mounts_before = count_mounts_under(root);
  std::string a = create();
  int init_pid = manager_->get(a).value()->info().init_pid;
  sh(a, "head -c 3000000 /dev/urandom > /workspace/big && md5sum /workspace/big > /workspace/big.md5"
        " && rm /etc/hostname && mkdir -p /opt/d && echo 1 > /opt/d/one");
  json b_info = call_json("POST", "/v1/sandboxes/" + a + "/fork", nullptr, 201);
  std::string b = b_info["id"];
  EXPECT_EQ(manager_->get(a).value()->info().init_pid, init_pid);  // the root was swapped in place
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_forks_cow_total 1\n"), std::string::npos);
  // Both see the state at the fork, with a working /usr, /proc and /dev, and nothing of the swap.
  for (const auto& id : {a, b}) {
    json r = sh(id, "md5sum -c /workspace/big.md5 >/dev/null && cat /opt/d/one && test ! -e /etc/hostname"
                    " && python3 -c 'print(6*7)' && ls /proc/1/status >/dev/null && ls -a /dev | grep -c tidal");
    EXPECT_EQ(r["stdout"], "1\n42\n0\n") << id << " " << r.dump();
  }
  // They diverge: writes, deletes and re-creations stay on their side.
  sh(a, "echo parent > /workspace/side; rm /opt/d/one; echo p > /etc/hostname");
  sh(b, "echo child > /workspace/side; echo 2 >> /opt/d/one; rm /workspace/big");
  EXPECT_EQ(sh(a, "cat /workspace/side /etc/hostname; ls /opt/d | wc -l; ls /workspace")["stdout"],
            "parent\np\n0\nbig\nbig.md5\nside\n");
  EXPECT_EQ(sh(b, "cat /workspace/side /opt/d/one; ls /etc/hostname 2>/dev/null | wc -l; ls /workspace")["stdout"],
            "child\n1\n2\n0\nbig.md5\nside\n");
  // The files API sees each side's current state.
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + a + "/files?path=/workspace/side").body, "parent\n");
  EXPECT_EQ(call("GET", "/v1/sandboxes/" + b + "/files?path=/workspace/side").body, "child\n");
  // A grandchild of b; then deleting a and b leaves c intact (their layers live on under it).
  std::string c = call_json("POST", "/v1/sandboxes/" + b + "/fork", nullptr, 201)["id"];
  call_json("DELETE", "/v1/sandboxes/" + a, nullptr, 200);
  call_json("DELETE", "/v1/sandboxes/" + b, nullptr, 200);
  EXPECT_EQ(sh(c, "cat /workspace/side /opt/d/one; ls /workspace; echo c > /workspace/side; cat /workspace/side")["stdout"],
            "child\n1\n2\nbig.md5\nside\nc\n");
  // Reset drops the layers: back to the template.
  call_json("POST", "/v1/sandboxes/" + c + "/reset", nullptr, 200);
  EXPECT_EQ(sh(c, "ls /workspace | wc -l; cat /etc/hostname; ls /opt")["stdout"], "0\nsandbox\n");
  call_json("DELETE", "/v1/sandboxes/" + c, nullptr, 200);
  EXPECT_EQ(count_mounts_under(root), mounts_before);
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(root + "/sandboxes", ec));
}

TEST_F(Api, RepeatedForksFlattenDeepStacksAndBusyParentsAreCopied) {
  std::string a = create();
  std::vector<std::string> kids;
  // More forks-after-writes than Rootfs::kMaxLayers: the stack is flattened on the way.
  for (int i = 0; i < 19; ++i) {
    sh(a, "echo " + std::to_string(i) + " > /workspace/f" + std::to_string(i) + (i == 3 ? "; rm /etc/hosts" : "") +
              (i == 5 ? "; echo again > /etc/hosts" : "") + (i == 7 ? "; rm -r /workspace/f1" : ""));
    json k = call_json("POST", "/v1/sandboxes/" + a + "/fork", nullptr, 201);
    kids.push_back(k["id"]);
    if (kids.size() > 3) call_json("DELETE", "/v1/sandboxes/" + kids[kids.size() - 4], nullptr, 200);
  }
  std::string want = "0 10 18 2 3 4 5 6 7 8 9 again ";
  std::string cat = "cd /workspace && cat f0 f10 f18 f2 f3 f4 f5 f6 f7 f8 f9 /etc/hosts | tr '\\n' ' '";
  EXPECT_EQ(sh(a, cat)["stdout"], want);
  EXPECT_EQ(sh(kids.back(), cat + "; ls f1 2>&1 | grep -c 'No such'")["stdout"], want + "1\n");
  // Forking an unchanged sandbox again stacks nothing new.
  std::string same = call_json("POST", "/v1/sandboxes/" + a + "/fork", nullptr, 201)["id"];
  EXPECT_EQ(sh(same, "cat /workspace/f9")["stdout"], "9\n");
  call_json("DELETE", "/v1/sandboxes/" + same, nullptr, 200);
  // A parent running a command is copied instead (its running command keeps its root).
  std::thread busy([&] {
    http::HttpClient cl("127.0.0.1", server_->port());
    (void)cl.request("POST", "/v1/sandboxes/" + a + "/exec", R"({"shell":"sleep 1; echo late > /workspace/late","timeout_s":10})");
  });
  for (int i = 0; i < 500 && manager_->get(a).value()->info().execs_running == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // until the command runs, not a fixed time
  }
  EXPECT_GT(manager_->get(a).value()->info().execs_running, 0);  // not ASSERT: `busy` must be joined
  std::string copy = call_json("POST", "/v1/sandboxes/" + a + "/fork", nullptr, 201)["id"];
  busy.join();
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_forks_copied_total 1\n"), std::string::npos);
  EXPECT_EQ(sh(copy, "cat /workspace/f9 /etc/hosts; ls /workspace/late 2>&1 | grep -c 'No such'")["stdout"], "9\nagain\n1\n");
  EXPECT_EQ(sh(a, "cat /workspace/late")["stdout"], "late\n");
}

TEST_F(Api, PauseAndResume) {
  if (!manager_->cgroups_enabled()) GTEST_SKIP() << "no freezer: " << manager_->cgroup_description();
  std::string id = create();
  // A command that keeps counting in the background of a long exec.
  std::thread counter([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    (void)c.request("POST", "/v1/sandboxes/" + id + "/exec",
                    R"({"shell":"i=0; while true; do i=$((i+1)); echo $i > /workspace/n; sleep 0.05; done","timeout_s":20})");
  });
  // Poll rather than sleep a fixed time: on a loaded machine the command may start late.
  // The counter's value, or "" while the file does not exist yet (a 404 body is not a count: taking
  // it for one let the pause below land before the command had started).
  const auto read_n = [&] {
    const http::ClientResponse r = call("GET", "/v1/sandboxes/" + id + "/files?path=/workspace/n");
    return r.status == 200 ? r.body : std::string();
  };
  const auto wait_for = [](const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return done();
  };
  EXPECT_TRUE(wait_for([&] { const std::string n = read_n(); return !n.empty() && n != "1\n"; }));
  json paused = call_json("POST", "/v1/sandboxes/" + id + "/pause", nullptr, 200);
  EXPECT_TRUE(paused["paused"].get<bool>());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string n1 = read_n();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  std::string n2 = read_n();
  EXPECT_EQ(n1, n2);  // frozen: no progress
  EXPECT_NE(call_json("POST", "/v1/sandboxes/" + id + "/exec", {{"cmd", {"true"}}}, 400)["error"]["message"]
                .get<std::string>().find("paused"), std::string::npos);
  call_json("POST", "/v1/sandboxes/" + id + "/resume", nullptr, 200);
  EXPECT_TRUE(wait_for([&] { return read_n() != n2; }));  // counting again
  EXPECT_EQ(sh(id, "echo back")["stdout"], "back\n");
  // Deleting a paused sandbox works (it is thawed to die).
  call_json("POST", "/v1/sandboxes/" + id + "/pause", nullptr, 200);
  call_json("DELETE", "/v1/sandboxes/" + id, nullptr, 200);
  counter.join();
}

TEST_F(Api, RunOneShot) {
  json r = call_json("POST", "/v1/run",
                     {{"language", "python"},
                      {"code", "import sys, helper\nprint(helper.X * 2, sys.stdin.read().strip())\n"},
                      {"files", {{"/workspace/helper.py", "X = 21\n"}}},
                      {"stdin", "from-stdin"}},
                     200);
  EXPECT_EQ(r["stdout"], "42 from-stdin\n");
  EXPECT_EQ(r["exit_code"], 0);
  json b = call_json("POST", "/v1/run", {{"language", "bash"}, {"code", "echo $((6*7)); exit 2"}}, 200);
  EXPECT_EQ(b["stdout"], "42\n");
  EXPECT_EQ(b["exit_code"], 2);
  json t = call_json("POST", "/v1/run", {{"language", "python"}, {"code", "while True: pass"}, {"timeout_s", 0.5}}, 200);
  EXPECT_TRUE(t["timed_out"].get<bool>());
  call_json("POST", "/v1/run", {{"language", "cobol"}, {"code", "x"}}, 400);
  call_json("POST", "/v1/run", {{"language", "bash"}}, 400);
  call_json("POST", "/v1/run", {{"language", "bash"}, {"code", "true"}, {"files", {{"/../x", "y"}}}}, 400);
  EXPECT_EQ(manager_->n_live(), 0u);  // one-shot sandboxes are gone
}

TEST_F(Api, StreamingExec) {
  std::string id = create();
  auto r = call("POST", "/v1/sandboxes/" + id + "/exec",
                json{{"shell", "echo one; sleep 0.2; echo two >&2; exit 5"}, {"stream", true}}.dump());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  EXPECT_NE(r.body.find("event: stdout\ndata: {\"data\":\"one\\n\"}"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("event: stderr\ndata: {\"data\":\"two\\n\"}"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("event: result\ndata: {\"cpu_ms\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"exit_code\":5"), std::string::npos);
}

TEST_F(Api, ConcurrentExecsInOneSandbox) {
  std::string id = create();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::future<json>> futures;
  for (int i = 0; i < 4; ++i) {
    futures.push_back(std::async(std::launch::async, [this, id, i] {
      http::HttpClient c("127.0.0.1", server_->port());
      auto r = c.request("POST", "/v1/sandboxes/" + id + "/exec",
                         json{{"shell", "sleep 1; echo " + std::to_string(i)}}.dump());
      return r ? json::parse(r->body) : json();
    }));
  }
  for (int i = 0; i < 4; ++i) EXPECT_EQ(futures[static_cast<size_t>(i)].get()["stdout"], std::to_string(i) + "\n");
  // Concurrent: well under the 4 s that one after another would take (slack for a loaded machine).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(3500));
}

TEST_F(Api, FullNodeQueuesCreatesWithBackpressure) {
  std::vector<std::string> ids;
  for (int i = 0; i < manager_->options().max_sandboxes; ++i) ids.push_back(create());
  // Not willing to wait: 429 at once, with Retry-After.
  auto full = call("POST", "/v1/sandboxes", R"({"queue_timeout_s": 0})");
  EXPECT_EQ(full.status, 429) << full.body;
  EXPECT_NE(full.body.find("node is full"), std::string::npos);
  EXPECT_FALSE(full.headers["retry-after"].empty());
  // Waiting past the deadline: 503, with Retry-After.
  auto late = call("POST", "/v1/sandboxes", R"({"queue_timeout_s": 0.2})");
  EXPECT_EQ(late.status, 503) << late.body;
  EXPECT_NE(late.body.find("waited 200 ms in the create queue"), std::string::npos) << late.body;
  EXPECT_FALSE(late.headers["retry-after"].empty());
  // A create that waits gets the slot of the next deleted sandbox.
  std::promise<http::ClientResponse> waited;
  std::thread waiter([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    auto r = c.request("POST", "/v1/sandboxes", R"({"labels": {"queued": "yes"}})");
    waited.set_value(r ? *r : http::ClientResponse{});
  });
  for (int i = 0; i < 500 && manager_->create_queue_depth() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_create_queue_depth 1\n"), std::string::npos);
  EXPECT_EQ(call_json("GET", "/health", nullptr, 200)["create_queue"], 1);
  call_json("DELETE", "/v1/sandboxes/" + ids[0], nullptr, 200);
  http::ClientResponse got = waited.get_future().get();
  waiter.join();
  EXPECT_EQ(got.status, 201) << got.body;
  EXPECT_EQ(manager_->n_live(), static_cast<size_t>(manager_->options().max_sandboxes));
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_queue_timeouts_total 1\n"), std::string::npos);
  call_json("POST", "/v1/sandboxes", {{"queue_timeout_s", -1}}, 400);
  call_json("POST", "/v1/sandboxes", {{"queue_timeout_s", 7200}}, 400);
}

class ExecQueue : public SandboxService {
 protected:
  ExecQueue() { max_execs_ = 1; }
};

TEST_F(ExecQueue, ExecsWaitForASlotWhenTheNodeRunsMaxExecs) {
  std::string a = create(), b = create({{"cpu_millis", 500}});
  std::thread busy([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    (void)c.request("POST", "/v1/sandboxes/" + a + "/exec", R"({"shell":"sleep 1.5","timeout_s":10})");
  });
  for (int i = 0; i < 500 && manager_->list()[0]->info().execs_running == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto no_wait = call("POST", "/v1/sandboxes/" + b + "/exec", R"({"cmd":["true"],"queue_timeout_s":0})");
  EXPECT_EQ(no_wait.status, 429) << no_wait.body;
  EXPECT_NE(no_wait.body.find("max_execs"), std::string::npos);
  auto late = call("POST", "/v1/sandboxes/" + b + "/exec", R"({"cmd":["true"],"queue_timeout_s":0.1})");
  EXPECT_EQ(late.status, 503) << late.body;
  EXPECT_EQ(late.headers["retry-after"], "1");
  // Waiting (the default): runs once the sleep is over.
  std::promise<json> waited;
  std::thread waiter([&] {
    http::HttpClient c("127.0.0.1", server_->port());
    auto r = c.request("POST", "/v1/sandboxes/" + b + "/exec", R"({"shell":"echo queued"})");
    waited.set_value(r && r->status == 200 ? json::parse(r->body) : json());
  });
  for (int i = 0; i < 500 && manager_->exec_queue_depth() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_exec_queue_depth 1\n"), std::string::npos);
  EXPECT_EQ(waited.get_future().get()["stdout"], "queued\n");
  busy.join();
  waiter.join();
  // CPU shares follow cpu_millis (cgroup v1 cpu.shares / v2 cpu.weight).
  if (manager_->cgroups_enabled()) {
    std::string want = std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers") ? "50" : "512";
    const char* file = want == "50" ? "cpu.weight" : "cpu.shares";
    std::string found;
    for (auto it = std::filesystem::recursive_directory_iterator("/sys/fs/cgroup", std::filesystem::directory_options::skip_permission_denied);
         it != std::filesystem::recursive_directory_iterator(); ++it) {
      if (it->path().filename() == b && std::filesystem::exists(it->path() / file)) {
        std::ifstream(it->path() / file) >> found;
        break;
      }
      if (it.depth() > 6) it.disable_recursion_pending();
    }
    EXPECT_EQ(found, want);
  }
}

TEST_F(Api, HealthAndMetrics) {
  json health = call_json("GET", "/health", nullptr, 200);
  EXPECT_EQ(health["status"], "ok");
  EXPECT_TRUE(health.contains("cgroups"));
  std::string id = create();
  sh(id, "true");
  auto m = call("GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("tidal_sandbox_live 1\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("tidal_sandbox_execs_total 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("tidal_sandbox_create_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("# TYPE tidal_sandbox_exec_seconds histogram"), std::string::npos);
  EXPECT_NE(m.body.find("tidal_sandbox_reaped_processes_total 0\n"), std::string::npos) << m.body;
  // CPU use: a busy command's CPU time is counted.
  json busy = sh(id, "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 60 & sleep 60 & echo bg");
  EXPECT_GT(busy["cpu_ms"].get<int64_t>(), 0) << busy.dump();
  EXPECT_EQ(busy["leftover_processes"], 2) << busy.dump();
  auto value = [&](const std::string& body, const std::string& name) -> int64_t {
    size_t at = body.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stoll(body.substr(at + name.size() + 2));
  };
  m = call("GET", "/metrics");
  EXPECT_GE(value(m.body, "tidal_sandbox_exec_cpu_milliseconds_total"), busy["cpu_ms"].get<int64_t>()) << m.body;
  EXPECT_EQ(value(m.body, "tidal_sandbox_reaped_processes_total"), 2) << m.body;
  // Destroying the sandbox kills and reaps its init (and anything else in it).
  call_json("DELETE", "/v1/sandboxes/" + id, nullptr, 200);
  m = call("GET", "/metrics");
  if (manager_->cgroups_enabled()) {
    EXPECT_GE(value(m.body, "tidal_sandbox_reaped_processes_total"), 3) << m.body;
  }
}

class WarmPool : public SandboxService {
 protected:
  WarmPool() { warm_pool_ = 2; }
  void wait_for_pool() {
    for (int i = 0; i < 500 && manager_->n_warm() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_EQ(manager_->n_warm(), 2u);
  }
};

using WarmPoolFork = WarmPool;

TEST_F(WarmPool, CreateIsAHandOutWithTheRequestedLimits) {
  wait_for_pool();
  EXPECT_EQ(call_json("GET", "/health", nullptr, 200)["warm_ready"], 2);
  std::string id = create({{"memory_mb", 64}, {"disk_mb", 8}, {"labels", {{"k", "v"}}}, {"env", {{"E", "1"}}}});
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_warm_hits_total 1\n"), std::string::npos);
  json info = call_json("GET", "/v1/sandboxes/" + id, nullptr, 200);
  EXPECT_EQ(info["memory_mb"], 64);
  EXPECT_EQ(info["labels"]["k"], "v");
  EXPECT_EQ(sh(id, "echo $E")["stdout"], "1\n");
  // The limits were applied on hand-out: disk ...
  json fill = sh(id, "head -c 20000000 /dev/zero > /workspace/big || echo full");
  EXPECT_NE(fill["stdout"].get<std::string>().find("full"), std::string::npos) << fill.dump();
  sh(id, "rm -f /workspace/big");
  // ... and memory.
  if (manager_->cgroups_enabled()) {
    json hog = exec(id, {{"cmd", {"python3", "-c", "x = bytearray(256 << 20); x[::4096] = b'x' * len(x[::4096])"}}});
    EXPECT_TRUE(hog["oom_killed"].get<bool>()) << hog.dump();
  }
  // A hand-out to a lease moves into the lease's CPU share group: its CPU time counts there.
  if (manager_->cgroups_enabled()) {
    wait_for_pool();
    std::string lease = call_json("POST", "/v1/leases", {{"ttl_s", 60}}, 201)["id"];
    std::string leased = create({{"lease", lease}});
    EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_warm_hits_total 2\n"), std::string::npos);
    sh(leased, "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done");
    EXPECT_GT(call_json("GET", "/v1/leases/" + lease, nullptr, 200)["cpu_ms"].get<int64_t>(), 20);
    call_json("DELETE", "/v1/leases/" + lease, nullptr, 200);
  }
  // Loopback sandboxes are not pooled (they are built), and the pool refills.
  std::string lo = create({{"network", "loopback"}});
  EXPECT_EQ(call_json("GET", "/v1/sandboxes/" + lo, nullptr, 200)["network"], "loopback");
  wait_for_pool();
  EXPECT_EQ(manager_->n_live(), 2u);
}

}  // namespace
}  // namespace tidal::sandbox::testing

namespace tidal::sandbox::testing {
namespace {

TEST_F(WarmPoolFork, ForkChildIsAPooledSandboxRebasedOntoTheParent) {
  wait_for_pool();
  std::string a = create();  // a hand-out
  sh(a, "echo state > /workspace/s; rm /etc/hosts");
  wait_for_pool();
  std::string b = call_json("POST", "/v1/sandboxes/" + a + "/fork", nullptr, 201)["id"];
  EXPECT_NE(call("GET", "/metrics").body.find("tidal_sandbox_warm_hits_total 2\n"), std::string::npos);
  EXPECT_EQ(sh(b, "cat /workspace/s; ls /etc/hosts 2>&1 | grep -c 'No such'; python3 -c 'print(1)'")["stdout"], "state\n1\n1\n");
  sh(b, "echo b > /workspace/s");
  EXPECT_EQ(sh(a, "cat /workspace/s")["stdout"], "state\n");
  call_json("DELETE", "/v1/sandboxes/" + a, nullptr, 200);
  EXPECT_EQ(sh(b, "cat /workspace/s")["stdout"], "b\n");
}

}  // namespace
}  // namespace tidal::sandbox::testing
