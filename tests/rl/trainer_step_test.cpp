// One SFT and one GRPO step on tiny models: the loss and every gradient match an independent
// float64 PyTorch computation of the same loss (tests/rl/torch_trainer_reference.py), the step
// moves the loss the right way, gradient accumulation changes nothing, and AdamW / clipping do
// what their definitions say.
#include <gtest/gtest.h>

#include <cmath>

#include "rl_test_util.h"
#include "tidal/rl/trainer.h"

namespace tidal::rl {
namespace {

using nlohmann::json;
using test::make_model;
using test::tokens;

std::unique_ptr<Trainer> load_trainer(TrainerConfig c) {
  c.n_threads = 2;
  auto t = Trainer::create(c);
  EXPECT_TRUE(t) << t.status().to_string();
  return t ? std::move(t).value() : nullptr;
}

std::unique_ptr<Trainer> load_trainer(const std::string& dir) {
  TrainerConfig c;
  c.model_dir = dir;
  return load_trainer(c);
}

SftBatch sft_batch() {
  SftBatch b;
  for (int i = 0; i < 3; ++i) {
    SftSequence s;
    s.tokens = tokens(12 + 5 * i, 10 + i);
    s.loss_mask.assign(s.tokens.size(), 1.0f);
    for (int t = 0; t < 4 + i; ++t) s.loss_mask[size_t(t)] = 0.0f;  // the prompt is not trained on
    b.sequences.push_back(std::move(s));
  }
  return b;
}

json sft_json(const std::string& dir, const SftBatch& b) {
  json seqs = json::array();
  for (const SftSequence& s : b.sequences) seqs.push_back({{"tokens", s.tokens}, {"mask", s.loss_mask}});
  return {{"model", dir}, {"kind", "sft"}, {"sequences", seqs}};
}

// Every gradient within 1e-4 of the tensor's largest reference value (F32 vs float64).
void expect_grads_match(const Trainer& t, const json& ref) {
  ASSERT_TRUE(ref.contains("grads"));
  size_t n = 0;
  for (const ParamView& g : t.gradients()) {
    ASSERT_TRUE(ref["grads"].contains(g.name)) << g.name;
    const json& r = ref["grads"][g.name];
    ASSERT_EQ(int64_t(r.size()), g.numel) << g.name;
    ASSERT_NE(g.data, nullptr) << g.name << " has no gradient";
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < g.numel; ++i) scale = std::max(scale, std::fabs(r[size_t(i)].get<double>()));
    for (int64_t i = 0; i < g.numel; ++i) worst = std::max(worst, std::fabs(g.data[i] - r[size_t(i)].get<double>()));
    EXPECT_LE(worst, 1e-4 * scale + 1e-7) << g.name << " (largest gradient " << scale << ")";
    ++n;
  }
  EXPECT_EQ(n, ref["grads"].size());
}

TEST(TrainerStep, SftMatchesPyTorchAndLowersLoss) {
  TIDAL_REQUIRE_TORCH_REFERENCE();
  const std::string dir = make_model("qwen2");
  TrainerConfig c;
  c.model_dir = dir;
  c.optimizer.lr = 1e-3;
  auto t = load_trainer(c);
  ASSERT_TRUE(t);
  const SftBatch batch = sft_batch();
  auto g = t->sft_gradients(batch);
  ASSERT_TRUE(g) << g.status().to_string();
  const json ref = test::run_reference("torch_trainer_reference.py", sft_json(dir, batch), "sft");
  ASSERT_TRUE(ref.contains("loss"));
  EXPECT_NEAR(g->loss, ref["loss"].get<double>(), 1e-5 * std::fabs(ref["loss"].get<double>()));
  EXPECT_EQ(g->n_tokens, (12 - 4) + (17 - 5) + (22 - 6));
  expect_grads_match(*t, ref);

  auto s = t->sft_step(batch);
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_EQ(s->step, 1);
  EXPECT_DOUBLE_EQ(s->loss, g->loss);  // the same forward before the update
  auto after = t->sft_gradients(batch);
  ASSERT_TRUE(after);
  EXPECT_LT(after->loss, g->loss - 1e-3);
}

// A GRPO batch that exercises every term: two groups, a masked token, off-policy tokens whose
// ratio is clipped, rollout logprobs (some weights capped) and a KL to a reference model.
GrpoBatch grpo_batch(Trainer& t) {
  GrpoBatch b;
  const float rewards[] = {1.0f, 0.0f, 0.5f, 0.0f, 1.0f, 1.0f};
  for (int i = 0; i < 6; ++i) {
    GrpoSample s;
    s.tokens = tokens(10 + i, 20 + i);
    s.n_prompt = 4 + i % 2;
    s.reward = rewards[i];
    s.group = i < 3 ? 0 : 1;
    const size_t n_comp = s.tokens.size() - size_t(s.n_prompt);
    auto lp = t.logprobs({s.tokens});
    EXPECT_TRUE(lp);
    const std::vector<float> cur((*lp)[0].begin() + (s.n_prompt - 1), (*lp)[0].end());
    if (i == 1) s.loss_mask.assign(n_comp, 1.0f), s.loss_mask[2] = 0.0f;
    if (i % 2 == 0) {  // off-policy: old logprobs far enough away that some ratios clip
      for (size_t k = 0; k < n_comp; ++k) s.old_logprobs.push_back(cur[k] + (k % 3 == 0 ? 0.5f : -0.4f) * float(k % 2));
    }
    for (size_t k = 0; k < n_comp; ++k) s.rollout_logprobs.push_back(cur[k] + (k % 4 == 0 ? -1.0f : 0.05f));
    b.samples.push_back(std::move(s));
  }
  return b;
}

json grpo_json(const std::string& dir, const std::string& ref_dir, const GrpoBatch& b, const PolicyLossConfig& p) {
  json samples = json::array();
  for (const GrpoSample& s : b.samples) {
    json j = {{"tokens", s.tokens}, {"n_prompt", s.n_prompt}, {"reward", s.reward}, {"group", s.group}};
    if (!s.loss_mask.empty()) j["mask"] = s.loss_mask;
    if (!s.old_logprobs.empty()) j["old"] = s.old_logprobs;
    if (!s.rollout_logprobs.empty()) j["rollout"] = s.rollout_logprobs;
    samples.push_back(j);
  }
  return {{"model", dir},
          {"kind", "grpo"},
          {"reference", ref_dir},
          {"samples", samples},
          {"policy",
           {{"clip_low", p.clip_low},
            {"clip_high", p.clip_high},
            {"kl_coef", p.kl_coef},
            {"tis_cap", p.tis_cap},
            {"scale_by_std", p.scale_by_std},
            {"adv_eps", p.adv_eps},
            {"aggregation", p.aggregation == LossAggregation::kToken ? "token" : "sequence"}}}};
}

class GrpoStepTest : public ::testing::TestWithParam<LossAggregation> {};

TEST_P(GrpoStepTest, MatchesPyTorchAndMovesTowardsAdvantage) {
  TIDAL_REQUIRE_TORCH_REFERENCE();
  const std::string dir = make_model("qwen3", false, 3);
  const std::string ref_dir = make_model("qwen3", false, 4);
  TrainerConfig c;
  c.model_dir = dir;
  c.reference_dir = ref_dir;
  c.optimizer.lr = 1e-3;
  c.policy.clip_low = 0.2;
  c.policy.clip_high = 0.28;
  c.policy.kl_coef = 0.05;
  c.policy.tis_cap = 1.5;
  c.policy.aggregation = GetParam();
  c.micro_batch_seqs = 4;  // two micro-batches
  auto t = load_trainer(c);
  ASSERT_TRUE(t);
  const GrpoBatch batch = grpo_batch(*t);
  auto g = t->grpo_gradients(batch);
  ASSERT_TRUE(g) << g.status().to_string();
  EXPECT_GT(g->clip_fraction, 0.0);
  EXPECT_GT(g->tis_clip_fraction, 0.0);
  EXPECT_GT(g->kl, 0.0);
  const json ref = test::run_reference("torch_trainer_reference.py", grpo_json(dir, ref_dir, batch, c.policy),
                                       GetParam() == LossAggregation::kToken ? "grpo_token" : "grpo_seq");
  ASSERT_TRUE(ref.contains("loss"));
  EXPECT_NEAR(g->loss, ref["loss"].get<double>(), 1e-5 * std::max(1.0, std::fabs(ref["loss"].get<double>())));
  expect_grads_match(*t, ref);

  // On-policy (no old logprobs, no KL): a step raises the log-likelihood of positive-advantage
  // completions relative to negative ones.
  GrpoBatch on = batch;
  for (GrpoSample& s : on.samples) s.old_logprobs.clear(), s.rollout_logprobs.clear();
  TrainerConfig c2 = c;
  c2.reference_dir.clear();
  c2.policy.kl_coef = 0;
  auto t2 = load_trainer(c2);
  ASSERT_TRUE(t2);
  // The surrogate the on-policy gradient climbs: sum over tokens of weight * A * logp, with the
  // aggregation's weights (1 / all tokens, or 1 / (sequences x own tokens)).
  auto objective = [&](Trainer& tr) {
    const float adv[] = {1, -1, 0, -1, 1, 1};  // signs of the group advantages above
    double total_tokens = 0;
    for (const GrpoSample& s : on.samples) {
      double n = 0;
      for (size_t k = 0; k < s.tokens.size() - size_t(s.n_prompt); ++k) n += s.loss_mask.empty() ? 1 : s.loss_mask[k];
      total_tokens += n;
    }
    double sum = 0;
    for (size_t i = 0; i < on.samples.size(); ++i) {
      const GrpoSample& s = on.samples[i];
      auto lp = tr.logprobs({s.tokens});
      double seq = 0, n = 0;
      for (size_t k = 0; k < s.tokens.size() - size_t(s.n_prompt); ++k) {
        const double m = s.loss_mask.empty() ? 1 : s.loss_mask[k];
        seq += m * adv[i] * (*lp)[0][size_t(s.n_prompt) - 1 + k];
        n += m;
      }
      sum += GetParam() == LossAggregation::kToken ? seq / total_tokens : seq / (n * double(on.samples.size()));
    }
    return sum;
  };
  const double before = objective(*t2);
  auto s = t2->grpo_step(on);
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_NEAR(s->mean_ratio, 1.0, 1e-6);
  EXPECT_EQ(s->clip_fraction, 0.0);
  EXPECT_GT(objective(*t2), before + 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Aggregation, GrpoStepTest, ::testing::Values(LossAggregation::kToken, LossAggregation::kSequence),
                         [](const auto& info) { return info.param == LossAggregation::kToken ? "token" : "sequence"; });

TEST(TrainerStep, GradientAccumulationEqualsWholeBatch) {
  const std::string dir = make_model("llama");
  TrainerConfig c;
  c.model_dir = dir;
  auto whole = load_trainer(c);
  c.micro_batch_seqs = 1;
  auto split = load_trainer(c);
  ASSERT_TRUE(whole && split);
  const SftBatch batch = sft_batch();
  auto a = whole->sft_gradients(batch);
  auto b = split->sft_gradients(batch);
  ASSERT_TRUE(a && b);
  EXPECT_NEAR(a->loss, b->loss, 1e-6 * std::fabs(a->loss));
  const auto ga = whole->gradients(), gb = split->gradients();
  for (size_t i = 0; i < ga.size(); ++i) {
    for (int64_t k = 0; k < ga[i].numel; ++k) ASSERT_NEAR(ga[i].data[k], gb[i].data[k], 1e-6) << ga[i].name;
  }
}

TEST(TrainerStep, AdamWFirstStepAndClipping) {
  const std::string dir = make_model("qwen3");
  TrainerConfig c;
  c.model_dir = dir;
  c.optimizer.lr = 1e-2;
  c.optimizer.weight_decay = 0.1;
  c.optimizer.max_grad_norm = 0;  // off: the update is the raw AdamW one
  c.optimizer.eps = 1e-8;
  auto t = load_trainer(c);
  ASSERT_TRUE(t);
  const SftBatch batch = sft_batch();
  ASSERT_TRUE(t->sft_gradients(batch));
  std::vector<std::vector<float>> p0, g0;
  for (const ParamView& p : t->parameters()) p0.emplace_back(p.data, p.data + p.numel);
  for (const ParamView& g : t->gradients()) g0.emplace_back(g.data, g.data + g.numel);
  ASSERT_TRUE(t->sft_step(batch));
  // Step 1 of AdamW: m^ = g, v^ = g^2, so p1 = p0 (1 - lr wd) - lr g / (|g| + eps); no decay on vectors.
  const auto params = t->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const double decay = params[i].shape.size() >= 2 ? 1.0 - 1e-2 * 0.1 : 1.0;
    for (int64_t k = 0; k < params[i].numel; ++k) {
      const double g = g0[i][size_t(k)];
      const double want = p0[i][size_t(k)] * decay - 1e-2 * g / (std::fabs(g) + 1e-8);
      ASSERT_NEAR(params[i].data[k], want, 1e-6) << params[i].name << "[" << k << "]";
    }
  }
  // Clipping: the reported norm is before clipping, the applied gradient has the cap's norm.
  TrainerConfig cc = c;
  cc.optimizer.max_grad_norm = 0.01;
  auto tc = load_trainer(cc);
  auto s = tc->sft_step(batch);
  ASSERT_TRUE(s);
  double sq = 0;
  for (const ParamView& g : tc->gradients()) for (int64_t k = 0; k < g.numel; ++k) sq += double(g.data[k]) * g.data[k];
  EXPECT_GT(s->grad_norm, 0.01);
  EXPECT_NEAR(std::sqrt(sq), 0.01, 1e-5);
}

TEST(TrainerStep, RejectsBadBatches) {
  auto t = load_trainer(make_model("llama"));
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->sft_step({}));
  SftBatch sft = sft_batch();
  sft.sequences[1].loss_mask.pop_back();
  auto e = t->sft_step(sft);
  ASSERT_FALSE(e);
  EXPECT_NE(e.status().message().find("sequence 1: loss_mask"), std::string::npos) << e.status().message();
  GrpoBatch g;
  g.samples.emplace_back();
  g.samples[0].tokens = {1, 2, 3};
  g.samples[0].n_prompt = 3;
  e = t->grpo_step(g);
  ASSERT_FALSE(e);
  EXPECT_NE(e.status().message().find("n_prompt"), std::string::npos) << e.status().message();
  g.samples[0].n_prompt = 1;
  g.samples[0].rollout_logprobs = {0.1f};
  e = t->grpo_step(g);
  ASSERT_FALSE(e);
  EXPECT_NE(e.status().message().find("rollout_logprobs has 1 entries for 2"), std::string::npos) << e.status().message();
  TrainerConfig kl;
  kl.model_dir = t->config().model_dir;
  kl.policy.kl_coef = 0.1;
  auto tk = load_trainer(kl);
  g.samples[0].rollout_logprobs.clear();
  e = tk->grpo_step(g);
  ASSERT_FALSE(e);
  EXPECT_NE(e.status().message().find("reference"), std::string::npos) << e.status().message();
  EXPECT_EQ(t->step(), 0);  // nothing was applied
}

}  // namespace
}  // namespace tidal::rl
