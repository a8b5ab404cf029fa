// The trainer's forward pass against the engine's F32 forward (same sequences, same weights) and
// against the independent PyTorch reference (tests/reference/torch_reference.py, float64).
#include <gtest/gtest.h>

#include <cmath>

#include "rl_test_util.h"
#include "tidal/rl/alignment.h"
#include "tidal/rl/trainer.h"

namespace tidal::rl {
namespace {

using test::make_model;
using test::tokens;

std::unique_ptr<Trainer> load_trainer(const std::string& dir) {
  TrainerConfig c;
  c.model_dir = dir;
  c.n_threads = 2;
  auto t = Trainer::create(c);
  EXPECT_TRUE(t) << t.status().to_string();
  return t ? std::move(t).value() : nullptr;
}

struct Arch {
  std::string family;
  bool tie;
};
class TrainerForwardTest : public ::testing::TestWithParam<Arch> {};

TEST_P(TrainerForwardTest, MatchesEngineF32) {
  const std::string dir = make_model(GetParam().family, GetParam().tie);
  auto trainer = load_trainer(dir);
  ASSERT_TRUE(trainer);
  auto engine = Model::load(dir, {.n_threads = 2, .quantization = {}});
  ASSERT_TRUE(engine) << engine.status().to_string();
  const std::vector<std::vector<int32_t>> seqs = {tokens(40, 1), tokens(7, 2), tokens(2, 3)};
  auto r = measure_alignment(*trainer, **engine, DType::kF32, seqs);
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->tokens, 39 + 6 + 1);
  EXPECT_LE(r->max_abs_delta, 1e-4);
  EXPECT_LE(r->kl, 1e-8);
  // The batched, padded path (logprobs) agrees with the one-sequence path.
  auto lp = trainer->logprobs(seqs);
  ASSERT_TRUE(lp) << lp.status().to_string();
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::vector<float> e = test::engine_logprobs(**engine, seqs[i]);
    ASSERT_EQ((*lp)[i].size(), e.size());
    for (size_t t = 0; t < e.size(); ++t) EXPECT_NEAR((*lp)[i][t], e[t], 1e-4) << "sequence " << i << " token " << t + 1;
  }
}

TEST_P(TrainerForwardTest, MatchesPyTorchReference) {
  TIDAL_REQUIRE_TORCH_REFERENCE();
  const std::string dir = make_model(GetParam().family, GetParam().tie);
  auto trainer = load_trainer(dir);
  ASSERT_TRUE(trainer);
  const std::vector<std::vector<int32_t>> seqs = {tokens(33, 4), tokens(5, 5)};
  auto lp = trainer->logprobs(seqs);
  ASSERT_TRUE(lp) << lp.status().to_string();
  const nlohmann::json ref =
      test::run_reference("torch_trainer_reference.py", {{"model", dir}, {"kind", "logprobs"}, {"sequences", seqs}},
                          "forward_" + GetParam().family);
  ASSERT_TRUE(ref.contains("logprobs"));
  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_EQ(ref["logprobs"][i].size(), (*lp)[i].size());
    for (size_t t = 0; t < (*lp)[i].size(); ++t) {
      EXPECT_NEAR((*lp)[i][t], ref["logprobs"][i][t].get<double>(), 1e-4) << "sequence " << i << " token " << t + 1;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, TrainerForwardTest,
                         ::testing::Values(Arch{"llama", false}, Arch{"qwen2", false}, Arch{"qwen3", false},
                                           Arch{"qwen3", true}),
                         [](const auto& info) { return info.param.family + (info.param.tie ? "_tied" : ""); });

// A BF16 engine computes with rounded weights (and K/V): a plain F32 trainer differs by the
// rounding; a trainer emulating the engine's roundings (straight-through) is back to F32 levels.
TEST(TrainerForward, Bf16EngineAndEmulation) {
  const std::string dir = make_model("qwen3");
  auto trainer = load_trainer(dir);
  ASSERT_TRUE(trainer);
  const std::string bf16_dir = test::temp_dir("bf16_engine");
  ASSERT_TRUE(trainer->save_model(bf16_dir, DType::kBF16).is_ok());
  auto engine = Model::load(bf16_dir, {.n_threads = 2, .quantization = {}});
  ASSERT_TRUE(engine) << engine.status().to_string();
  EXPECT_EQ((*engine)->weight_dtype(), DType::kBF16);
  const std::vector<std::vector<int32_t>> seqs = {tokens(48, 6), tokens(16, 7)};

  auto plain = measure_alignment(*trainer, **engine, DType::kBF16, seqs);
  ASSERT_TRUE(plain) << plain.status().to_string();
  EXPECT_GT(plain->mean_abs_delta, 1e-3);  // BF16 really differs: the comparison is not vacuous
  EXPECT_LE(plain->mean_abs_delta, 5e-2);

  TrainerConfig c;
  c.model_dir = dir;
  c.n_threads = 2;
  c.emulate_weight_dtype = DType::kBF16;
  c.emulate_kv_dtype = DType::kBF16;
  auto emulating = Trainer::create(c);
  ASSERT_TRUE(emulating);
  auto both = measure_alignment(**emulating, **engine, DType::kBF16, seqs);
  ASSERT_TRUE(both);
  EXPECT_LE(both->mean_abs_delta, 1e-2);
  EXPECT_LT(both->mean_abs_delta, plain->mean_abs_delta / 10);

  // BF16 weights with an F32 KV cache: emulating the weights alone leaves only F32 noise.
  c.emulate_kv_dtype = DType::kF32;
  auto weights_only = Trainer::create(c);
  ASSERT_TRUE(weights_only);
  auto f32_kv = measure_alignment(**weights_only, **engine, DType::kF32, seqs);
  ASSERT_TRUE(f32_kv);
  EXPECT_LE(f32_kv->max_abs_delta, 1e-4);
}

TEST(TrainerForward, RejectsBadInput) {
  auto trainer = load_trainer(make_model("llama"));
  ASSERT_TRUE(trainer);
  auto lp = trainer->logprobs({{1, 2, 3}, {4, 512}});
  ASSERT_FALSE(lp);
  EXPECT_NE(lp.status().message().find("sequence 1"), std::string::npos) << lp.status().message();
  EXPECT_NE(lp.status().message().find("512"), std::string::npos);
  EXPECT_FALSE(trainer->logprobs({{7}}));  // nothing to predict
  TrainerConfig c;
  c.model_dir = "/nonexistent/model";
  auto bad = Trainer::create(c);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("/nonexistent/model"), std::string::npos);
}

}  // namespace
}  // namespace tidal::rl
