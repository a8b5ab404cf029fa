// `tidal rl` with rollouts on `tidal serve` instances (rollout.backend = "http"): one instance is
// SIGKILLed mid-run; the run continues on the other, and the trajectory ledger holds every
// trajectory exactly once (nothing lost, nothing counted twice).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "../rollout/serve_process.h"
#include "rl_test_util.h"
#include "tidal/model/model_init.h"
#include "tidal/rl/rl_config.h"
#include "tidal/rl/rl_loop.h"

namespace tidal::rl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t grpo_lines(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) n += line.find("\"phase\":\"grpo\"") != std::string::npos;
  return n;
}

TEST(RlHttpLoop, KilledInstanceLosesNoTrajectory) {
  const fs::path dir = test::temp_dir("loop_http");
  fs::remove_all(dir);
  fs::create_directories(dir);
  // The servers start on a model of the run's shape; the run publishes its policy before rolling out.
  RandomModelSpec s;
  s.family = "qwen3";
  s.n_layers = 1;
  s.hidden = 32;
  s.intermediate = 64;
  s.n_heads = 2;
  s.n_kv_heads = 2;
  s.vocab = 259;
  s.max_position = 64;
  s.dtype = DType::kF32;
  s.tie_embeddings = true;
  s.seed = 11;
  const std::string model = (dir / "model").string();
  ASSERT_TRUE(write_random_model(s, model, true).is_ok());
  std::vector<tidal::test::Server> servers;
  for (int i = 0; i < 2; ++i) servers.push_back(tidal::test::Server::start(model, dir));
  ASSERT_NE(servers[0].port, 0);
  ASSERT_NE(servers[1].port, 0);

  const int64_t steps = 6, prompts = 4, samples = 4;
  std::vector<std::string> ov = {
      "run.dir=\"" + (dir / "run").string() + "\"", "run.trainer_threads=1", "model.path=\"" + model + "\"",
      "env.name=\"count-letters\"", "env.letters=\"abc\"", "env.min_len=3", "env.max_len=6",
      "sft.steps=2", "sft.batch=4", "grpo.steps=" + std::to_string(steps), "grpo.prompts=" + std::to_string(prompts),
      "grpo.samples=" + std::to_string(samples), "grpo.max_policy_lag=1", "grpo.drop_uniform_groups=false",
      "eval.instances=4", "eval.samples=1", "eval.every=0", "rollout.backend=\"http\"",
      "rollout.urls=[\"" + servers[0].url + "\", \"" + servers[1].url + "\"]"};
  auto c = parse_rl_config("", "http.toml", ov);
  ASSERT_TRUE(c) << c.status().to_string();
  std::atomic<bool> done{false};
  Expected<json> result = Status(StatusCode::kInternal, "not run");
  std::thread run([&] {
    result = run_rl(*c, {});
    done = true;
  });
  // Kill instance 1 once training is under way (the next steps' rollouts are in flight or queued).
  while (!done && grpo_lines(dir / "run" / "metrics.jsonl") < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  servers[1].kill();
  run.join();
  ASSERT_TRUE(result) << result.status().to_string();
  std::ifstream in(dir / "run" / "ledger.jsonl");
  std::string line;
  std::set<uint64_t> ids;
  size_t n = 0;
  while (std::getline(in, line)) {
    auto j = json::parse(line);
    ids.insert(j["trajectory"].get<uint64_t>());
    ++n;
  }
  EXPECT_EQ(n, size_t(steps * prompts * samples));
  EXPECT_EQ(ids.size(), n);  // each once
  std::ifstream m(dir / "run" / "metrics.jsonl");
  int64_t failed = 0;
  while (std::getline(m, line)) {
    auto j = json::parse(line);
    if (j["phase"] == "grpo") failed += j["trajectories_failed"].get<int64_t>();
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(servers[0].version(), 0);  // the survivor got the trainer's versions
  servers[0].kill();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tidal::rl
