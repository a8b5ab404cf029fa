// HttpBackend against real `tidal serve` processes (the CLI binary, TIDAL_BIN) on a tiny random
// model: every (tag, index) comes back exactly once when an instance is SIGKILLed mid-run, the
// samples equal an in-process EngineBackend's (same seeds; the engine is batch invariant), weights
// reach every instance (and a re-admitted one catches up), and with no live instance requests
// fail with an error instead of hanging.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tidal/http/http_client.h"
#include "tidal/model/model_init.h"
#include "tidal/rollout/engine_backend.h"
#include "tidal/rollout/http_backend.h"
#include "serve_process.h"

extern char** environ;

namespace tidal::rollout {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

fs::path work_dir() {
  static const fs::path d = fs::temp_directory_path() / ("tidal_http_backend_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// Models and server logs live in one folder per test process, removed at exit.
class RemoveWorkDir : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(work_dir(), ec);
  }
};
const auto* const g_cleanup = ::testing::AddGlobalTestEnvironment(new RemoveWorkDir);

std::string make_model(const std::string& name, uint64_t seed) {
  const fs::path d = work_dir() / name;
  if (fs::exists(d / "config.json")) return d.string();
  RandomModelSpec s;
  s.family = "qwen3";
  s.n_layers = 2;
  s.hidden = 64;
  s.intermediate = 128;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.vocab = 600;
  s.max_position = 512;
  s.seed = seed;
  EXPECT_TRUE(write_random_model(s, d.string(), true).is_ok());
  return d.string();
}

using test::Server;
using test::kThreads;
using test::kKvMemory;
using test::kKvBytes;

Server start_server(const std::string& model, uint16_t port = 0) { return Server::start(model, work_dir(), port); }

class HttpBackendTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (auto& s : servers_) s.kill();
  }
  std::vector<std::string> urls() const {
    std::vector<std::string> u;
    for (const auto& s : servers_) u.push_back(s.url);
    return u;
  }
  std::vector<Server> servers_;
};

std::vector<GenRequest> make_requests(int count, int n) {
  std::vector<GenRequest> reqs;
  for (int i = 0; i < count; ++i) {
    std::mt19937 rng(static_cast<uint32_t>(i));
    GenRequest r;
    r.tag = 1000 + uint64_t(i);
    const int len = 3 + int(rng() % 10);
    for (int k = 0; k < len; ++k) r.prompt.push_back(int32_t(rng() % 600));
    r.params.n = n;
    r.params.temperature = 1.0;
    r.params.seed = 77 + uint64_t(i);
    r.params.max_tokens = 12;
    for (int32_t id = 100; id < 130; ++id) r.params.stop_token_ids.push_back(id);  // ~5% per token: many stop early
    reqs.push_back(std::move(r));
  }
  return reqs;
}

// Polls until `want` results arrived or the deadline passed (the test then fails, not hangs).
// on_result runs after each poll with the count so far.
std::vector<GenResult> collect(GenerationBackend& b, size_t want, double deadline_s,
                               const std::function<void(size_t)>& on_progress = {}) {
  std::vector<GenResult> all;
  const auto t0 = Clock::now();
  while (all.size() < want && std::chrono::duration<double>(Clock::now() - t0).count() < deadline_s) {
    for (GenResult& g : b.poll(0.05)) all.push_back(std::move(g));
    if (on_progress) on_progress(all.size());
  }
  return all;
}

TEST_F(HttpBackendTest, KilledInstanceLosesNothingAndSamplesEqualTheInProcessEngine) {
  const std::string model = make_model("a", 1);
  for (int i = 0; i < 3; ++i) servers_.push_back(start_server(model));
  HttpBackendOptions o;
  o.urls = urls();
  o.workers_per_instance = 8;
  o.probe_interval_s = 0.2;
  auto hb = HttpBackend::create(o);
  ASSERT_TRUE(hb) << hb.status().to_string();
  HttpBackend& b = **hb;
  EXPECT_EQ(b.describe(), "http: 3 instances (3 live)");

  const int kRequests = 100, kN = 4;
  const auto reqs = make_requests(kRequests, kN);
  for (const auto& r : reqs) ASSERT_TRUE(b.submit(r).is_ok());
  EXPECT_EQ(b.in_flight(), size_t(kRequests));
  // SIGKILL instance 1 once a few requests are done: it still has requests queued and running.
  bool killed = false;
  auto got = collect(b, size_t(kRequests * kN), 120, [&](size_t n) {
    if (!killed && n >= 5 * kN) {
      servers_[1].kill();
      killed = true;
    }
  });
  ASSERT_TRUE(killed);
  ASSERT_EQ(got.size(), size_t(kRequests * kN));
  EXPECT_EQ(b.in_flight(), 0u);
  EXPECT_GT(b.reissued(), 0u);  // its requests went to the others
  const auto info = b.instances();
  EXPECT_FALSE(info[1].live);
  EXPECT_TRUE(info[0].live && info[2].live);
  EXPECT_EQ(info[1].failures, 1u);

  // Every (tag, index) exactly once, no errors.
  std::map<std::pair<uint64_t, int32_t>, GenResult> by_key;
  size_t stopped = 0;
  for (auto& g : got) {
    EXPECT_TRUE(g.error.empty()) << g.error;
    EXPECT_TRUE(g.finish == "stop" || g.finish == "length") << g.finish;
    EXPECT_EQ(g.logprobs.size(), g.tokens.size());
    EXPECT_EQ(g.versions, std::vector<uint64_t>(g.tokens.size(), 0));
    EXPECT_FALSE(g.backend.empty());
    stopped += g.finish == "stop";
    auto key = std::make_pair(g.tag, g.index);
    EXPECT_FALSE(by_key.count(key)) << "duplicate " << g.tag << "/" << g.index;
    by_key[key] = std::move(g);
  }
  EXPECT_EQ(by_key.size(), size_t(kRequests * kN));
  EXPECT_GT(stopped, 0u);

  // The in-process engine, same model, same engine settings, same seeds: identical samples
  // (the stop token included), identical raw log-probabilities.
  EngineConfig ec;
  ec.model_dir = model;
  ec.n_threads = kThreads;
  ec.kv_cache_bytes = kKvBytes;
  auto engine = Engine::create(ec);
  ASSERT_TRUE(engine) << engine.status().to_string();
  EngineBackend eb(**engine);
  for (const auto& r : reqs) ASSERT_TRUE(eb.submit(r).is_ok());
  auto ref = collect(eb, size_t(kRequests * kN), 120);
  ASSERT_EQ(ref.size(), size_t(kRequests * kN));
  size_t same = 0, stopped_on_id = 0;
  for (const auto& e : ref) {
    const GenResult& h = by_key.at({e.tag, e.index});
    EXPECT_EQ(h.tokens, e.tokens) << e.tag << "/" << e.index;
    EXPECT_EQ(h.logprobs, e.logprobs) << e.tag << "/" << e.index;
    EXPECT_EQ(h.finish, e.finish) << e.tag << "/" << e.index;
    same += h.tokens == e.tokens;
    // The stop token (one of stop_token_ids, or the model's EOS) is the last token, in both.
    if (e.finish == "stop") stopped_on_id += e.tokens.back() >= 100 && e.tokens.back() < 130;
  }
  EXPECT_EQ(same, size_t(kRequests * kN));
  EXPECT_GT(stopped_on_id, 0u);
}

TEST_F(HttpBackendTest, PublishReachesEveryInstanceAndAReadmittedOneCatchesUp) {
  const std::string model = make_model("a", 1), other = make_model("b", 2);
  for (int i = 0; i < 2; ++i) servers_.push_back(start_server(model));
  HttpBackendOptions o;
  o.urls = urls();
  o.workers_per_instance = 4;
  o.probe_interval_s = 0.1;
  auto hb = HttpBackend::create(o);
  ASSERT_TRUE(hb) << hb.status().to_string();
  HttpBackend& b = **hb;
  EXPECT_EQ(b.weight_version(), 0u);

  ASSERT_TRUE(b.publish_weights(other + "/model.safetensors", 7).is_ok());
  EXPECT_EQ(b.weight_version(), 7u);
  for (const auto& s : servers_) EXPECT_EQ(s.version(), 7);
  for (const auto& r : make_requests(6, 2)) ASSERT_TRUE(b.submit(r).is_ok());
  for (const auto& g : collect(b, 12, 60)) {
    EXPECT_TRUE(g.error.empty()) << g.error;
    EXPECT_EQ(g.versions, std::vector<uint64_t>(g.tokens.size(), 7));
  }
  // A path an instance cannot read is an error (not a dead instance).
  EXPECT_FALSE(b.publish_weights("/nonexistent/model.safetensors", 8).is_ok());
  for (const auto& i : b.instances()) EXPECT_TRUE(i.live);
  ASSERT_TRUE(b.publish_weights(other + "/model.safetensors", 9).is_ok());

  // Instance 0 dies; requests fail over to instance 1.
  const uint16_t port0 = servers_[0].port;
  servers_[0].kill();
  for (const auto& r : make_requests(8, 2)) ASSERT_TRUE(b.submit(r).is_ok());
  auto got = collect(b, 16, 60);
  ASSERT_EQ(got.size(), 16u);
  for (const auto& g : got) {
    EXPECT_TRUE(g.error.empty()) << g.error;
    EXPECT_EQ(g.backend, servers_[1].url);
  }
  EXPECT_FALSE(b.instances()[0].live);
  // It comes back on the same port with its initial weights (version 0); the prober re-admits it
  // only after giving it the latest weights (version 9).
  servers_[0] = start_server(model, port0);
  ASSERT_EQ(servers_[0].port, port0);
  for (int i = 0; i < 1000 && !b.instances()[0].live; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(b.instances()[0].live);
  EXPECT_EQ(servers_[0].version(), 9);
  EXPECT_EQ(b.weight_version(), 9u);
  EXPECT_EQ(b.describe(), "http: 2 instances (2 live)");
}

TEST_F(HttpBackendTest, PartialRolloutContinuesOnTheNewWeightsWithPerTokenVersions) {
  // A generation in flight when weights are published goes on with the new ones; each token
  // carries the version that produced it. The engine is frozen (/admin/pause keep) at a known
  // point so the split is exact.
  const std::string model = make_model("a", 1), other = make_model("b", 2);
  servers_.push_back(start_server(model));
  HttpBackendOptions o;
  o.urls = urls();
  auto hb = HttpBackend::create(o);
  ASSERT_TRUE(hb) << hb.status().to_string();
  HttpBackend& b = **hb;
  // The pause must land mid-generation. On a fast machine the whole generation can finish before
  // the pause does; then that attempt is collected and the next one tries again.
  constexpr int kTokens = 500;  // prompt + tokens stay within max_position (512)
  int64_t before = 0;
  bool split = false;
  uint64_t tag = 5;
  for (int attempt = 0; attempt < 10 && !split; ++attempt, ++tag) {
    GenRequest r;
    r.tag = tag;
    r.prompt = {1, 2, 3};
    r.params.max_tokens = kTokens;
    r.params.ignore_eos = true;
    r.params.seed = 1;
    const int64_t base = servers_[0].metric("tidal_engine_generated_tokens");
    ASSERT_TRUE(b.submit(r).is_ok());
    for (int i = 0; i < 25000 && servers_[0].metric("tidal_engine_generated_tokens") < base + 2; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ASSERT_EQ(servers_[0].post("/admin/pause", R"({"mode": "keep"})"), 200);
    before = servers_[0].metric("tidal_engine_generated_tokens") - base;
    ASSERT_GE(before, 2);
    split = before < kTokens;
    if (!split) {  // finished before the pause: every token is still version 0
      ASSERT_EQ(servers_[0].post("/admin/resume", "{}"), 200);
      auto done = collect(b, 1, 60);
      ASSERT_EQ(done.size(), 1u);
      EXPECT_EQ(done[0].versions, std::vector<uint64_t>(kTokens, 0));
    }
  }
  ASSERT_TRUE(split) << "every attempt finished before the pause landed";
  ASSERT_TRUE(b.publish_weights(other + "/model.safetensors", 3).is_ok());
  ASSERT_EQ(servers_[0].post("/admin/resume", "{}"), 200);
  auto got = collect(b, 1, 60);
  ASSERT_EQ(got.size(), 1u);
  const GenResult& g = got[0];
  EXPECT_EQ(g.tag, tag - 1);
  EXPECT_TRUE(g.error.empty()) << g.error;
  EXPECT_EQ(g.finish, "length");
  ASSERT_EQ(g.tokens.size(), size_t(kTokens));
  ASSERT_EQ(g.versions.size(), size_t(kTokens));
  for (size_t i = 0; i < size_t(kTokens); ++i) EXPECT_EQ(g.versions[i], int64_t(i) < before ? 0u : 3u) << i;

  // A request the server refuses (a token id outside the vocabulary) comes back with the server's
  // message as its error; the instance stays live.
  GenRequest bad;
  bad.tag = 6;
  bad.prompt = {1, 5000};
  bad.params.n = 2;
  ASSERT_TRUE(b.submit(bad).is_ok());
  auto errs = collect(b, 2, 60);
  ASSERT_EQ(errs.size(), 2u);
  for (const auto& e : errs) {
    EXPECT_EQ(e.tag, 6u);
    EXPECT_NE(e.error.find("HTTP 400"), std::string::npos) << e.error;
    EXPECT_NE(e.error.find("5000"), std::string::npos) << e.error;
  }
  EXPECT_TRUE(b.instances()[0].live);
}

TEST_F(HttpBackendTest, NoLiveInstanceReturnsErrorsInsteadOfHanging) {
  const std::string model = make_model("a", 1);
  servers_.push_back(start_server(model));
  HttpBackendOptions o;
  o.urls = {servers_[0].url, "http://127.0.0.1:1"};  // the second never answers
  o.workers_per_instance = 2;
  o.retry_timeout_s = 0.5;
  o.probe_interval_s = 0.1;
  auto hb = HttpBackend::create(o);
  ASSERT_TRUE(hb) << hb.status().to_string();
  HttpBackend& b = **hb;
  EXPECT_EQ(b.describe(), "http: 2 instances (1 live)");
  servers_[0].kill();
  for (const auto& r : make_requests(5, 3)) ASSERT_TRUE(b.submit(r).is_ok());
  auto got = collect(b, 15, 60);  // bounded by retry_timeout_s; the deadline only stops a hang
  ASSERT_EQ(got.size(), 15u);
  std::set<std::pair<uint64_t, int32_t>> keys;
  for (const auto& g : got) {
    EXPECT_FALSE(g.error.empty());
    EXPECT_EQ(g.finish, "abort");
    keys.insert({g.tag, g.index});
  }
  EXPECT_EQ(keys.size(), 15u);
  EXPECT_EQ(b.in_flight(), 0u);
  EXPECT_TRUE(b.poll(0).empty());

  // Options are checked.
  HttpBackendOptions bad;
  EXPECT_FALSE(HttpBackend::create(bad));
  bad.urls = {"https://127.0.0.1:8000"};
  EXPECT_FALSE(HttpBackend::create(bad));
  bad.urls = {"http://127.0.0.1"};
  EXPECT_FALSE(HttpBackend::create(bad));
  bad.urls = {"http://127.0.0.1:99999"};
  EXPECT_FALSE(HttpBackend::create(bad));
  bad.urls = {"http://localhost:8000/", "http://127.0.0.1:8000"};
  EXPECT_FALSE(HttpBackend::create(bad));  // the same instance twice
  // Bad requests fail at submit, like the in-process backend.
  EXPECT_FALSE(b.submit(GenRequest{}).is_ok());
}

}  // namespace
}  // namespace tidal::rollout
