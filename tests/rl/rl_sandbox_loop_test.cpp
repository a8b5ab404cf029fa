// `tidal rl` with a task that runs code: arith-python against a real sandbox service (in this
// process). Checks the whole chain: the run's lease, blocking environment steps on the worker pool,
// sandbox calls counted in the metrics, and nothing left behind when the run ends. Needs root.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../sandbox/sandbox_test_env.h"
#include "rl_test_util.h"
#include "tidal/rl/rl_config.h"
#include "tidal/rl/rl_loop.h"

namespace tidal::rl {
namespace {

namespace fs = std::filesystem;

class RlSandboxLoop : public sandbox::testing::SandboxService {};

TEST_F(RlSandboxLoop, ArithPythonRunsItsRewardsInSandboxesUnderOneLease) {
  const std::string dir = test::temp_dir("loop_arith");
  fs::remove_all(dir);
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port());
  const std::string text = R"(
[run]
trainer_threads = 1
engine_threads = 1
[model]
layers = 1
hidden = 32
intermediate = 64
heads = 2
kv_heads = 2
max_position = 256
[env]
name = "arith-python"
terms = 2
max_operand = 9
style = "symbols"
max_tokens = 8
timeout_s = 2
[sft]
steps = 20
batch = 8
lr = 3e-3
[grpo]
steps = 2
prompts = 2
samples = 2
max_policy_lag = 0
drop_uniform_groups = false
[eval]
instances = 3
samples = 1
every = 0
)";
  auto c = parse_rl_config(text, "arith.toml", {"run.dir=\"" + dir + "\"", "sandbox.url=\"" + url + "\""});
  ASSERT_TRUE(c) << c.status().to_string();
  auto r = run_rl(*c, {});
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_GE((*r)["rl_accuracy"].get<double>(), 0.0);
  double calls = 0, host_calls = 0;
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  std::string line;
  int steps = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["phase"] == "grpo") {
      calls += j["sandbox_calls"].get<double>();
      // Per sandbox host (one here): requests and failures of the step.
      ASSERT_TRUE(j.contains("sandbox_hosts")) << line;
      ASSERT_EQ(j["sandbox_hosts"].size(), 1u) << line;
      ASSERT_TRUE(j["sandbox_hosts"].contains(url)) << line;
      host_calls += j["sandbox_hosts"][url]["calls"].get<double>();
      EXPECT_EQ(j["sandbox_hosts"][url]["failures"].get<int64_t>(), 0) << line;
      EXPECT_EQ(j["trajectories_failed"].get<int64_t>(), 0) << line;
      ++steps;
    }
  }
  EXPECT_EQ(steps, 2);
  // One /v1/run per trajectory with a non-empty answer (a barely trained model sometimes answers
  // with the end-of-sequence token alone: reward 0, no call).
  EXPECT_GT(calls, 0.0);
  EXPECT_LE(calls, 2.0 * 2 * 2);
  EXPECT_GE(host_calls, calls);  // each /v1/run is one request (more only if one was still in flight)
  // The lease ended with the run: no sandbox left.
  EXPECT_EQ(manager_->n_live(), 0u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tidal::rl
