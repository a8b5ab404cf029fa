#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "rollout_test_util.h"
#include "tidal/engine/engine.h"
#include "tidal/rollout/engine_backend.h"
#include "tidal/rollout/evaluate.h"
#include "tidal/rollout/rollout_manager.h"

namespace tidal::rollout {
namespace {

// A test task: the prompt is 3 + instance % 5 fixed ids; each turn generates `max_tokens` tokens
// (EOS ignored); the reward is the parity of the last token; with turns > 1 the environment
// answers every turn but the last with the 2-token observation {7, 8}. Instance 13 fails.
class ToyEnv final : public Environment {
 public:
  ToyEnv(uint64_t instance, int turns) : instance_(instance), turns_(turns) {}
  Expected<std::vector<int32_t>> reset() override {
    std::vector<int32_t> p;
    for (uint64_t i = 0; i < 3 + instance_ % 5; ++i) p.push_back(int32_t(10 + (instance_ * 7 + i) % 200));
    return p;
  }
  Expected<EnvStep> step(const std::vector<int32_t>& completion, const std::string&) override {
    if (instance_ == 13) return internal_error("toy: instance 13 always fails");
    EnvStep s;
    if (++turn_ < turns_) {
      s.observation = {7, 8};
      s.info["tool_calls"] = 1;
      return s;
    }
    s.done = true;
    s.reward = completion.empty() ? 0 : completion.back() % 2;
    s.correct = s.reward > 0;
    return s;
  }

 private:
  uint64_t instance_;
  int turns_, turn_ = 0;
};

class ToyTask final : public Task {
 public:
  ToyTask(int max_tokens, int turns) : max_tokens_(max_tokens), turns_(turns) {}
  std::string name() const override { return "toy"; }
  Expected<std::unique_ptr<Environment>> make(uint64_t instance, const std::string&) const override {
    return std::unique_ptr<Environment>(std::make_unique<ToyEnv>(instance, turns_));
  }
  SamplingParams turn_params() const override {
    SamplingParams p;
    p.max_tokens = max_tokens_;
    p.ignore_eos = true;
    return p;
  }
  int max_turns() const override { return turns_; }

 private:
  int max_tokens_, turns_;
};

// Wraps a backend: the first attempt of every request whose tag is even fails, and every
// successful result is delivered twice (as a re-issuing backend might).
class FlakyBackend final : public GenerationBackend {
 public:
  explicit FlakyBackend(GenerationBackend& inner) : inner_(inner) {}
  Status submit(GenRequest r) override {
    if (r.tag % 2 == 0 && failed_.insert(r.tag).second) {
      for (int32_t i = 0; i < r.params.n; ++i) {
        GenResult g;
        g.tag = r.tag;
        g.index = i;
        g.error = "instance died";
        g.finish = "abort";
        queued_.push_back(g);
      }
      return Status::ok();
    }
    return inner_.submit(std::move(r));
  }
  std::vector<GenResult> poll(double max_wait_s) override {
    std::vector<GenResult> out = std::move(queued_);
    queued_.clear();
    if (out.empty()) {
      for (auto& g : inner_.poll(max_wait_s)) {
        out.push_back(g);
        out.push_back(g);  // duplicate
      }
    }
    return out;
  }
  Status publish_weights(const std::string& p, uint64_t v) override { return inner_.publish_weights(p, v); }
  uint64_t weight_version() const override { return inner_.weight_version(); }
  size_t in_flight() const override { return inner_.in_flight() + queued_.size(); }
  std::string describe() const override { return "flaky"; }

 private:
  GenerationBackend& inner_;
  std::set<uint64_t> failed_;
  std::vector<GenResult> queued_;
};

class RolloutManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = test::tiny_model();
    ASSERT_FALSE(model_.empty());
    auto t = Tokenizer::load(model_);
    ASSERT_TRUE(t);
    tok_.emplace(std::move(*t));
  }
  std::unique_ptr<Engine> engine() {
    EngineConfig c;
    c.model_dir = model_;
    c.n_threads = 1;
    c.kv_cache_bytes = 16 << 20;
    c.max_num_seqs = 64;
    auto e = Engine::create(c);
    EXPECT_TRUE(e) << e.status().to_string();
    return e ? std::move(*e) : nullptr;
  }
  // Runs `steps` train steps of `groups` groups (publishing the same weights as a new version
  // after each) and returns every group.
  std::vector<Group> run(const Task& task, GenerationBackend& backend, RolloutConfig c, int steps,
                         RolloutStats* stats = nullptr) {
    RolloutManager m(task, backend, *tok_, c);
    m.start(0);
    std::vector<Group> all;
    for (int s = 0; s < steps; ++s) {
      auto g = m.take(size_t(c.groups_per_step), uint64_t(s));
      EXPECT_TRUE(g) << g.status().to_string();
      if (!g) break;
      for (auto& x : *g) all.push_back(std::move(x));
      m.publish(model_ + "/model.safetensors", uint64_t(s + 1));
    }
    if (stats) *stats = m.stats();
    m.stop();
    return all;
  }
  std::string model_;
  std::optional<Tokenizer> tok_;
};

TEST_F(RolloutManagerTest, SynchronousStepsGetEveryGroupOnceOnTheTrainersVersion) {
  ToyTask task(4, 1);
  auto e = engine();
  EngineBackend backend(*e);
  RolloutConfig c;
  c.group_size = 4;
  c.groups_per_step = 3;
  c.max_policy_lag = 0;
  c.seed = 5;
  c.max_groups = 9;  // nothing admitted after the last step
  RolloutStats st;
  auto groups = run(task, backend, c, 3, &st);
  ASSERT_EQ(groups.size(), 9u);
  std::set<uint64_t> ids;
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group& g = groups[i];
    EXPECT_EQ(g.id, i);  // in admission order
    ASSERT_EQ(g.samples.size(), 4u);
    for (int s = 0; s < 4; ++s) {
      const Trajectory& t = g.samples[size_t(s)];
      EXPECT_EQ(t.sample, s);
      EXPECT_TRUE(ids.insert(t.id()).second);
      EXPECT_EQ(t.tokens.size(), size_t(t.n_prompt) + 4);
      EXPECT_EQ(t.loss_mask, std::vector<float>(4, 1.0f));
      EXPECT_EQ(t.rollout_logprobs.size(), 4u);
      for (float lp : t.rollout_logprobs) EXPECT_LT(lp, 0.0f);
      // Synchronous: generated entirely by the version the trainer has at this step.
      EXPECT_EQ(t.min_version(), i / 3) << "group " << i;
      EXPECT_EQ(t.max_version(), i / 3);
      if (g.instance != 13) {
        EXPECT_TRUE(t.error.empty());
      }
    }
    // The samples of a group share the prompt but are sampled independently.
    EXPECT_EQ(std::vector<int32_t>(g.samples[0].tokens.begin(), g.samples[0].tokens.begin() + g.samples[0].n_prompt),
              std::vector<int32_t>(g.samples[1].tokens.begin(), g.samples[1].tokens.begin() + g.samples[1].n_prompt));
  }
  EXPECT_EQ(st.groups_taken, 9u);
  EXPECT_EQ(st.groups_dropped_stale, 0u);
  EXPECT_EQ(st.generated_tokens, 9u * 4 * 4);
}

TEST_F(RolloutManagerTest, SameSeedSameTrajectories) {
  ToyTask task(5, 1);
  RolloutConfig c;
  c.group_size = 3;
  c.groups_per_step = 4;
  c.max_policy_lag = 0;
  c.seed = 9;
  auto e1 = engine();
  EngineBackend b1(*e1);
  auto a = run(task, b1, c, 2);
  auto e2 = engine();
  EngineBackend b2(*e2);
  auto b = run(task, b2, c, 2);
  ASSERT_EQ(a.size(), b.size());
  bool differ_within_group = false;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t s = 0; s < a[i].samples.size(); ++s) {
      EXPECT_EQ(a[i].samples[s].tokens, b[i].samples[s].tokens);
      EXPECT_EQ(a[i].samples[s].rollout_logprobs, b[i].samples[s].rollout_logprobs);
    }
    differ_within_group |= a[i].samples[0].tokens != a[i].samples[1].tokens;
  }
  EXPECT_TRUE(differ_within_group);
}

TEST_F(RolloutManagerTest, PolicyLagBoundsStaleness) {
  ToyTask task(6, 1);
  auto e = engine();
  EngineBackend backend(*e);
  for (int lag : {1, 2}) {
    RolloutConfig c;
    c.group_size = 2;
    c.groups_per_step = 3;
    c.max_policy_lag = lag;
    c.seed = 2;
    RolloutManager m(task, backend, *tok_, c);
    const uint64_t v0 = backend.weight_version();
    m.start(v0);
    for (int s = 0; s < 5; ++s) {
      auto g = m.take(3, v0 + uint64_t(s));
      ASSERT_TRUE(g);
      for (const auto& grp : *g)
        for (const auto& t : grp.samples) EXPECT_LE(v0 + uint64_t(s) - t.min_version(), uint64_t(lag));
      m.publish(model_ + "/model.safetensors", v0 + uint64_t(s) + 1);
    }
    EXPECT_EQ(m.stats().groups_dropped_stale, 0u);
    // Admission never ran more than `lag` steps ahead of the trainer.
    EXPECT_LE(m.stats().groups_admitted, uint64_t(3 * (5 + 1 + lag)));
    m.stop();
  }
}

TEST_F(RolloutManagerTest, GenerationsInFlightContinueOnNewWeights) {
  auto e = engine();
  EngineBackend backend(*e);
  GenRequest r;
  r.tag = 1;
  r.prompt = {10, 11, 12};
  r.params.max_tokens = 12;
  r.params.ignore_eos = true;
  r.params.seed = 1;
  ASSERT_TRUE(backend.submit(r).is_ok());
  EXPECT_TRUE(backend.poll(0.0).empty());  // one engine step: not finished yet
  ASSERT_TRUE(backend.publish_weights(model_ + "/model.safetensors", 7).is_ok());
  std::vector<GenResult> out;
  while (out.empty()) out = backend.poll(1.0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tokens.size(), 12u);
  EXPECT_EQ(out[0].versions.front(), 0u);  // partial rollout: started on version 0 ...
  EXPECT_EQ(out[0].versions.back(), 7u);   // ... finished on version 7
  EXPECT_EQ(backend.in_flight(), 0u);
}

TEST_F(RolloutManagerTest, MultiTurnObservationsAreMaskedOut) {
  ToyTask task(3, 3);
  auto e = engine();
  EngineBackend backend(*e);
  RolloutConfig c;
  c.group_size = 2;
  c.groups_per_step = 2;
  c.max_policy_lag = 0;
  c.max_groups = 2;  // nothing admitted after the step (the stats count exactly these groups)
  RolloutStats st;
  auto groups = run(task, backend, c, 1, &st);
  ASSERT_EQ(groups.size(), 2u);
  for (const auto& g : groups) {
    for (const auto& t : g.samples) {
      EXPECT_EQ(t.turns, 3);
      // 3 turns of 3 tokens, 2 observations of 2 tokens.
      EXPECT_EQ(t.loss_mask, (std::vector<float>{1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1}));
      EXPECT_EQ(t.tokens[size_t(t.n_prompt) + 3], 7);
      EXPECT_EQ(t.tokens[size_t(t.n_prompt) + 4], 8);
      EXPECT_EQ(t.info.at("tool_calls"), 2.0);
    }
  }
  EXPECT_EQ(st.info.at("tool_calls"), 8.0);
}

TEST_F(RolloutManagerTest, FailedGenerationsAreResubmittedAndDuplicatesDropped) {
  ToyTask task(4, 2);
  RolloutConfig c;
  c.group_size = 3;
  c.groups_per_step = 4;
  c.max_policy_lag = 0;
  c.seed = 4;
  c.max_groups = 8;  // exactly the two steps' groups
  auto e1 = engine();
  EngineBackend clean(*e1);
  auto want = run(task, clean, c, 2);
  auto e2 = engine();
  EngineBackend inner(*e2);
  FlakyBackend flaky(inner);
  RolloutStats st;
  auto got = run(task, flaky, c, 2, &st);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].samples.size(), 3u);
    for (size_t s = 0; s < 3; ++s) {
      // A re-submitted sample is the same sample (same seed): nothing lost, nothing doubled.
      EXPECT_EQ(got[i].samples[s].tokens, want[i].samples[s].tokens) << i << "/" << s;
      EXPECT_EQ(got[i].samples[s].sample, int32_t(s));
    }
  }
  EXPECT_GT(st.resubmissions, 0u);
  EXPECT_GT(st.duplicates_dropped, 0u);
  EXPECT_EQ(st.trajectories, got.size() * 3);
}

TEST_F(RolloutManagerTest, EnvironmentErrorsFailTheTrajectoryNotTheRun) {
  ToyTask task(2, 1);
  auto e = engine();
  EngineBackend backend(*e);
  RolloutConfig c;
  c.group_size = 2;
  c.groups_per_step = 16;
  c.max_policy_lag = 0;
  c.sequential_instances = true;  // instance = group id: group 13 fails
  c.max_groups = 16;
  RolloutStats st;
  auto groups = run(task, backend, c, 1, &st);
  ASSERT_EQ(groups.size(), 16u);
  for (const auto& t : groups[13].samples) EXPECT_NE(t.error.find("instance 13"), std::string::npos);
  for (const auto& t : groups[12].samples) EXPECT_TRUE(t.error.empty());
  EXPECT_EQ(st.trajectories_failed, 2u);
}

TEST_F(RolloutManagerTest, EvaluateCountsGreedyAndSampled) {
  ToyTask task(3, 1);
  auto e = engine();
  EngineBackend backend(*e);
  auto r = evaluate(task, backend, *tok_, "test", 20, 4, 1.0, 1);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->n, 20);
  EXPECT_EQ(r->failed, 1 + 4);  // instance 13, greedy and 4 samples
  EXPECT_GE(r->accuracy, 0.0);
  EXPECT_LE(r->accuracy, 1.0);
  // Greedy is deterministic: the same again.
  auto r2 = evaluate(task, backend, *tok_, "test", 20, 0, 1.0, 1);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->accuracy, r->accuracy);
}

}  // namespace
}  // namespace tidal::rollout
