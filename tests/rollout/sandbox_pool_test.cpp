// SandboxPool against two real sandbox daemons (each a SandboxManager with its own root and the
// HTTP API on a loopback port, in this process): calls spread over both hosts, a stopped host's
// calls fail over to the other without losing one, a persistent sandbox's calls go to its own
// host, a lost lease takes its host out, and the pool's leases take every sandbox with them.
// Needs root (skips otherwise).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tidal/http/http_server.h"
#include "tidal/rollout/sandbox_client.h"
#include "tidal/rollout/sandbox_pool.h"
#include "tidal/sandbox/sandbox_api.h"
#include "tidal/sandbox/sandbox_manager.h"

namespace tidal::rollout {
namespace {

// One `tidal sandbox serve` daemon: manager + HTTP API; stop() closes its port (a dead host).
struct Daemon {
  std::unique_ptr<sandbox::SandboxManager> manager;
  std::unique_ptr<http::HttpServer> server;
  std::string root, url;

  Status start(int index) {
    sandbox::ManagerOptions o;
    root = "/tmp/tidal-sandbox-pool-test-" + std::to_string(getpid()) + "-" + std::to_string(index);
    o.root = root;
    o.max_sandboxes = 16;
    o.egress_subnet = "10." + std::to_string(100 + 50 * index + getpid() % 50) + ".0.0/16";
    TIDAL_ASSIGN_OR_RETURN(manager, sandbox::SandboxManager::open(o));
    http::Router router;
    sandbox::SandboxApi::add_routes(router, *manager);
    http::HttpServerOptions h;
    h.port = 0;
    h.max_body_bytes = 1 << 20;
    server = std::make_unique<http::HttpServer>(std::move(router), h);
    TIDAL_RETURN_IF_ERROR(server->start());
    url = "http://127.0.0.1:" + std::to_string(server->port());
    return Status::ok();
  }
  void stop() {
    if (server) server->stop();
  }
  ~Daemon() {
    stop();
    manager.reset();
    if (!root.empty()) std::system(("rm -rf " + root).c_str());
  }
};

class SandboxPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
    for (int i = 0; i < 2; ++i) {
      Status s = d_[i].start(i);
      ASSERT_TRUE(s.is_ok()) << s.to_string();
    }
  }

  std::unique_ptr<SandboxPool> open(double ttl_s = 5) {
    auto p = SandboxPool::open({d_[0].url, d_[1].url}, "", ttl_s);
    EXPECT_TRUE(p.has_value()) << p.status().to_string();
    return p.has_value() ? std::move(*p) : nullptr;
  }

  static SandboxRun six_times_seven() {
    SandboxRun r;
    r.code = "print(6*7)";
    r.timeout_s = 20;
    return r;
  }

  Daemon d_[2];
};

TEST_F(SandboxPoolTest, RunsSpreadOverBothHostsUnderTheirLeases) {
  auto pool = open();
  ASSERT_TRUE(pool);
  EXPECT_NE(pool->lease(0), "");
  EXPECT_NE(pool->lease(1), "");
  // One at a time: both hosts idle, so the choice alternates.
  for (int i = 0; i < 4; ++i) {
    auto r = pool->run(six_times_seven());
    ASSERT_TRUE(r.has_value()) << r.status().to_string();
    EXPECT_EQ(r->stdout_data, "42\n");
  }
  auto st = pool->stats();
  EXPECT_EQ(st[0].calls, 2);
  EXPECT_EQ(st[1].calls, 2);
  // Concurrent callers: each host gets some.
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2; ++i) ok += pool->run(six_times_seven()).has_value();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
  st = pool->stats();
  EXPECT_EQ(st[0].calls + st[1].calls, 10);
  EXPECT_GE(st[0].calls, 3);
  EXPECT_GE(st[1].calls, 3);
  for (const auto& h : st) {
    EXPECT_EQ(h.failures, 0) << h.url;
    EXPECT_EQ(h.in_flight, 0) << h.url;
    EXPECT_TRUE(h.healthy) << h.url;
  }
  EXPECT_TRUE(pool->status().is_ok()) << pool->status().to_string();
  // A bad request is not retried on the other host.
  SandboxRun bad = six_times_seven();
  bad.language = "cobol";
  auto r = pool->run(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  st = pool->stats();
  EXPECT_EQ(st[0].calls + st[1].calls, 11);
  EXPECT_EQ(st[0].failures + st[1].failures, 1);
}

TEST_F(SandboxPoolTest, AStoppedHostsCallsFailOverAndNoneIsLost) {
  auto pool = open(3);
  ASSERT_TRUE(pool);
  constexpr int kThreads = 3, kEach = 4;
  std::atomic<int> done{0}, ok{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = pool->run(six_times_seven());
        if (r.has_value() && r->stdout_data == "42\n") ++ok;
        else if (!r.has_value()) errors[size_t(t)] = r.status().to_string();
        ++done;
      }
    });
  // Host 1 goes away while calls are running.
  while (done.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  d_[1].stop();
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  for (const auto& e : errors) EXPECT_EQ(e, "");
  auto before = pool->stats();
  EXPECT_GE(before[1].failures, 1);
  EXPECT_EQ(before[0].failures, 0);
  // Afterwards every call lands on host 0 (host 1 is in back-off: not even tried).
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(pool->run(six_times_seven()).has_value());
  auto after = pool->stats();
  EXPECT_EQ(after[0].calls - before[0].calls, 3);
  EXPECT_EQ(after[1].calls, before[1].calls);
  EXPECT_FALSE(after[1].healthy);
  // The stopped host's lease can no longer be renewed: status() names it (heartbeat every 1 s).
  Status s;
  for (int i = 0; i < 60 && s.is_ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    s = pool->status();
  }
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find(d_[1].url), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find(d_[0].url + ":"), std::string::npos) << s.message();
}

TEST_F(SandboxPoolTest, ASandboxsCallsGoToItsOwnHost) {
  auto pool = open();
  ASSERT_TRUE(pool);
  std::vector<SandboxHandle> h;
  for (int i = 0; i < 2; ++i) {
    auto c = pool->create_sandbox({});
    ASSERT_TRUE(c.has_value()) << c.status().to_string();
    h.push_back(*c);
  }
  ASSERT_NE(h[0].host, h[1].host);
  for (const auto& x : h) {
    auto sb = d_[x.host].manager->get(x.id);
    ASSERT_TRUE(sb.has_value()) << sb.status().to_string();
    EXPECT_EQ((*sb)->spec().lease, pool->lease(x.host));  // under its host's lease
  }
  // State lives on the sandbox's host: what one exec writes, the next reads back.
  for (const auto& x : h) {
    SandboxExec w;
    w.shell = "echo host" + std::to_string(x.host) + " > /tmp/who";
    auto r = pool->exec(x, w);
    ASSERT_TRUE(r.has_value() && r->ok()) << (r.has_value() ? r->stderr_data : r.status().to_string());
  }
  for (const auto& x : h) {
    SandboxExec rd;
    rd.shell = "cat /tmp/who";
    auto r = pool->exec(x, rd);
    ASSERT_TRUE(r.has_value()) << r.status().to_string();
    EXPECT_EQ(r->stdout_data, "host" + std::to_string(x.host) + "\n");
  }
  // Its host gone, a sandbox's exec fails naming that host; no fail-over to the other.
  const SandboxHandle& lost = h[0].host == 1 ? h[0] : h[1];
  const SandboxHandle& kept = h[0].host == 1 ? h[1] : h[0];
  d_[1].stop();
  const int64_t calls0 = pool->stats()[0].calls;
  SandboxExec echo;
  echo.argv = {"echo", "hi"};
  auto r = pool->exec(lost, echo);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), StatusCode::kIoError);
  EXPECT_NE(r.status().message().find(d_[1].url + "/v1/sandboxes/" + lost.id + "/exec"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(pool->stats()[0].calls, calls0);
  auto still = pool->exec(kept, echo);
  ASSERT_TRUE(still.has_value()) << still.status().to_string();
  EXPECT_EQ(still->stdout_data, "hi\n");
  EXPECT_TRUE(pool->delete_sandbox(kept).is_ok());
  EXPECT_EQ(d_[0].manager->n_live(), 0u);
  // New sandboxes go to the host that is up.
  auto fresh = pool->create_sandbox({});
  ASSERT_TRUE(fresh.has_value()) << fresh.status().to_string();
  EXPECT_EQ(fresh->host, 0u);
}

TEST_F(SandboxPoolTest, ALostLeaseTakesItsHostOut) {
  auto pool = open();
  ASSERT_TRUE(pool);
  // The daemon forgets the run's lease (as after a restart): its sandboxes are gone, and the pool
  // stops using it on the first refusal.
  SandboxClient direct(parse_sandbox_url(d_[1].url).value());
  ASSERT_TRUE(direct.delete_lease(pool->lease(1)).is_ok());
  for (int i = 0; i < 4; ++i) {
    auto r = pool->run(six_times_seven());
    ASSERT_TRUE(r.has_value()) << r.status().to_string();
  }
  auto c = pool->create_sandbox({});
  ASSERT_TRUE(c.has_value()) << c.status().to_string();
  EXPECT_EQ(c->host, 0u);
  auto st = pool->stats();
  EXPECT_EQ(st[0].calls, 5);
  EXPECT_EQ(st[1].calls, 1);  // the one refusal
  EXPECT_FALSE(st[1].healthy);
  Status s = pool->status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.to_string();
  EXPECT_NE(s.message().find(pool->lease(1) + " on " + d_[1].url), std::string::npos) << s.message();
}

TEST_F(SandboxPoolTest, ThePoolsLeasesTakeEverySandboxWithThem) {
  auto pool = open();
  ASSERT_TRUE(pool);
  const std::string lease0 = pool->lease(0), lease1 = pool->lease(1);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(pool->create_sandbox({}).has_value());
  EXPECT_EQ(d_[0].manager->n_live(), 2u);
  EXPECT_EQ(d_[1].manager->n_live(), 2u);
  pool.reset();  // never deleted one by one: the leases take them
  EXPECT_EQ(d_[0].manager->n_live(), 0u);
  EXPECT_EQ(d_[1].manager->n_live(), 0u);
  EXPECT_EQ(d_[0].manager->heartbeat(lease0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(d_[1].manager->heartbeat(lease1).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace tidal::rollout
