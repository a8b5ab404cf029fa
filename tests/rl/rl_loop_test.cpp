// `tidal rl` end to end on a tiny model: outputs, the trajectory ledger, resume after a stop.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "rl_test_util.h"
#include "tidal/rl/rl_config.h"
#include "tidal/rl/rl_loop.h"

namespace tidal::rl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kConfig = R"(
[run]
seed = 3
trainer_threads = 1
engine_threads = 1
[model]
layers = 1
hidden = 32
intermediate = 64
heads = 2
kv_heads = 2
max_position = 64
[env]
name = "count-letters"
letters = "abc"
min_len = 3
max_len = 6
probe_letters = "xyz"
probe_min_len = 7
probe_max_len = 9
[sft]
steps = 4
batch = 8
[grpo]
steps = 4
prompts = 4
samples = 4
max_policy_lag = 0
drop_uniform_groups = false
checkpoint_every = 2
lr = 1e-3
[eval]
instances = 16
samples = 2
every = 2
[rollout]
kv_cache_mib = 8
)";

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

Expected<json> run(const std::string& dir, RlRunOptions o = {}, std::vector<std::string> extra = {}) {
  extra.push_back("run.dir=\"" + dir + "\"");
  auto c = parse_rl_config(kConfig, "test.toml", extra);
  EXPECT_TRUE(c) << c.status().to_string();
  if (!c) return c.status();
  return run_rl(*c, o);
}

TEST(RlConfig, ErrorsNameTheKey) {
  auto bad = [](const std::string& text, const std::string& want, std::vector<std::string> ov = {}) {
    auto c = parse_rl_config(text, "x.toml", ov);
    ASSERT_FALSE(c) << text;
    EXPECT_NE(c.status().message().find(want), std::string::npos) << c.status().message();
  };
  bad("[env]\nname = \"count-letters\"\n[grpo]\nlr = -1\n", "grpo.lr");
  bad("[env]\nname = \"count-letters\"\n[grpo]\nlearning_rate = 1\n", "learning_rate");
  bad("[env]\nname = \"count-letters\"\n[trainer]\n", "unknown table [trainer]");
  bad("[grpo]\nsteps = 3\n", "[env] table is required");
  bad("[env]\nname = \"count-letters\"\n[grpo\n", "x.toml:3");
  bad("[env]\nname = \"count-letters\"\n", "expected table.key=value", {"steps=3"});
  bad("[env]\nname = \"count-letters\"\n[rollout]\nbackend = \"http\"\n", "rollout.urls");
  bad("[env]\nname = \"count-letters\"\n[model]\nheads = 3\n", "model.hidden");
  bad("[env]\nname = \"count-letters\"\n[sandbox]\nurl = \"http://127.0.0.1:1\"\nurls = [\"http://127.0.0.1:2\"]\n",
      "sandbox.url and sandbox.urls");
  bad("[env]\nname = \"count-letters\"\n[sandbox]\nurls = [\"http://127.0.0.1:1\", \"https://b:443\"]\n",
      "sandbox.urls[1]: sandbox url 'https://b:443'");
  bad("[env]\nname = \"count-letters\"\n[sandbox]\nurls = [\"http://127.0.0.1:1\", \"http://localhost:1/\"]\n",
      "sandbox.urls[1]: 'http://localhost:1/' is listed twice");
  bad("[env]\nname = \"count-letters\"\n[sandbox]\nurls = []\n", "sandbox.urls: empty");
  bad("[env]\nname = \"count-letters\"\n[sandbox]\nurl = \"127.0.0.1:1\"\n", "sandbox.urls[0]: sandbox url '127.0.0.1:1'");
  bad("[env]\nname = \"count-letters\"\n[sandbox]\nurls = \"http://127.0.0.1:1\"\n", "'urls'");
  auto ok = parse_rl_config("[env]\nname = \"count-letters\"\n", "x.toml", {"grpo.steps=7", "run.dir=/tmp/x y"});
  ASSERT_TRUE(ok) << ok.status().to_string();
  EXPECT_EQ(ok->grpo.steps, 7);
  EXPECT_EQ(ok->run.dir, "/tmp/x y");
  EXPECT_TRUE(ok->sandbox.urls.empty());  // no sandbox service
}

TEST(RlConfig, SandboxUrlIsAOneElementUrls) {
  auto one = parse_rl_config("[env]\nname = \"count-letters\"\n[sandbox]\nurl = \"http://127.0.0.1:8080\"\n", "x.toml");
  ASSERT_TRUE(one) << one.status().to_string();
  EXPECT_EQ(one->sandbox.urls, std::vector<std::string>{"http://127.0.0.1:8080"});
  auto two = parse_rl_config(
      "[env]\nname = \"count-letters\"\n[sandbox]\nurls = [\"http://10.0.0.1:8080\", \"http://10.0.0.2:8080\"]\n"
      "lease_ttl_s = 30\n",
      "x.toml");
  ASSERT_TRUE(two) << two.status().to_string();
  EXPECT_EQ(two->sandbox.urls, (std::vector<std::string>{"http://10.0.0.1:8080", "http://10.0.0.2:8080"}));
  EXPECT_EQ(two->sandbox.lease_ttl_s, 30);
  // The CLI's --set works for both spellings.
  auto set = parse_rl_config("[env]\nname = \"count-letters\"\n", "x.toml",
                             {"sandbox.urls=[\"http://127.0.0.1:1\", \"http://127.0.0.1:2\"]"});
  ASSERT_TRUE(set) << set.status().to_string();
  EXPECT_EQ(set->sandbox.urls.size(), 2u);
  // A --set of one spelling replaces the file's other one (not an error).
  auto replaced = parse_rl_config("[env]\nname = \"count-letters\"\n[sandbox]\nurl = \"http://127.0.0.1:1\"\n",
                                  "x.toml", {"sandbox.urls=[\"http://127.0.0.1:2\", \"http://127.0.0.1:3\"]"});
  ASSERT_TRUE(replaced) << replaced.status().to_string();
  EXPECT_EQ(replaced->sandbox.urls, (std::vector<std::string>{"http://127.0.0.1:2", "http://127.0.0.1:3"}));
  auto back = parse_rl_config("[env]\nname = \"count-letters\"\n[sandbox]\nurls = [\"http://127.0.0.1:2\"]\n",
                              "x.toml", {"sandbox.url=\"http://127.0.0.1:1\""});
  ASSERT_TRUE(back) << back.status().to_string();
  EXPECT_EQ(back->sandbox.urls, std::vector<std::string>{"http://127.0.0.1:1"});
}

TEST(RlLoop, RunsEndToEndAndLedgerHasEveryTrajectoryOnce) {
  const std::string dir = test::temp_dir("loop_e2e");
  fs::remove_all(dir);
  auto r = run(dir);
  ASSERT_TRUE(r) << r.status().to_string();
  for (const char* k : {"sft_accuracy", "rl_accuracy", "sft_sampled_reward", "rl_sampled_reward",
                        "probe_letters_accuracy", "probe_length_accuracy"}) {
    ASSERT_TRUE(r->contains(k)) << k;
    EXPECT_GE((*r)[k].get<double>(), 0.0) << k;
    EXPECT_LE((*r)[k].get<double>(), 1.0) << k;
  }
  EXPECT_GT((*r)["wall_s"].get<double>(), 0.0);
  const auto ledger = read_jsonl(fs::path(dir) / "ledger.jsonl");
  ASSERT_EQ(ledger.size(), 4u * 4 * 4);  // steps x prompts x samples
  std::set<uint64_t> ids;
  for (const auto& l : ledger) EXPECT_TRUE(ids.insert(l["trajectory"].get<uint64_t>()).second);
  const auto metrics = read_jsonl(fs::path(dir) / "metrics.jsonl");
  int grpo = 0, eval = 0;
  for (const auto& m : metrics) {
    grpo += m["phase"] == "grpo";
    eval += m["phase"] == "eval";
    if (m["phase"] == "grpo") {
      EXPECT_EQ(m["staleness_max"].get<double>(), 0.0);  // max_policy_lag 0
    }
  }
  EXPECT_EQ(grpo, 4);
  EXPECT_EQ(eval, 3 + 1 + 3);  // sft (test + 2 probes), step 2 (test), final (test + 2 probes)
  std::ifstream svg(fs::path(dir) / "curve.svg");
  std::string head(4, ' ');
  svg.read(head.data(), 4);
  EXPECT_EQ(head, "<svg");
  EXPECT_TRUE(fs::exists(fs::path(dir) / "ckpt" / "step-4" / "trainer_state.json"));
  // A second run into the same directory is refused (nothing overwritten) ...
  auto again = run(dir);
  ASSERT_FALSE(again);
  EXPECT_NE(again.status().message().find("--resume"), std::string::npos);
  // ... and resuming a finished run returns its summary.
  RlRunOptions o;
  o.resume = true;
  auto done = run(dir, o);
  ASSERT_TRUE(done);
  EXPECT_EQ((*done)["rl_accuracy"], (*r)["rl_accuracy"]);
  fs::remove_all(dir);
}

TEST(RlLoop, ResumeAfterAStopGivesTheUninterruptedResult) {
  const std::string a = test::temp_dir("loop_whole"), b = test::temp_dir("loop_resumed");
  fs::remove_all(a);
  fs::remove_all(b);
  auto whole = run(a);
  ASSERT_TRUE(whole) << whole.status().to_string();
  RlRunOptions stop;
  stop.stop_after_steps = 3;  // checkpoint at step 2: step 3 is repeated by the resumed run
  auto first = run(b, stop);
  ASSERT_TRUE(first) << first.status().to_string();
  EXPECT_TRUE((*first)["stopped"].get<bool>());
  RlRunOptions resume;
  resume.resume = true;
  auto second = run(b, resume);
  ASSERT_TRUE(second) << second.status().to_string();
  for (const char* k : {"sft_accuracy", "rl_accuracy", "rl_sampled_reward", "probe_letters_accuracy"})
    EXPECT_EQ((*whole)[k], (*second)[k]) << k;
  // Same trajectories, each once (step 3 of the first invocation was forgotten, then redone).
  auto la = read_jsonl(fs::path(a) / "ledger.jsonl"), lb = read_jsonl(fs::path(b) / "ledger.jsonl");
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) {
    EXPECT_EQ(la[i]["trajectory"], lb[i]["trajectory"]);
    EXPECT_EQ(la[i]["reward"], lb[i]["reward"]);
  }
  fs::remove_all(a);
  fs::remove_all(b);
}

}  // namespace
}  // namespace tidal::rl
