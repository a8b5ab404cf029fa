// Checkpoint and exact resume: training 4 steps straight and training 2 steps, saving, loading
// into a fresh trainer and training 2 more give bit-identical weights and losses.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "rl_test_util.h"
#include "tidal/model/model.h"
#include "tidal/rl/trainer.h"

namespace tidal::rl {
namespace {

using test::tokens;

TrainerConfig config(const std::string& dir) {
  TrainerConfig c;
  c.model_dir = dir;
  c.n_threads = 2;
  c.micro_batch_seqs = 2;
  c.optimizer.lr = 3e-3;
  c.optimizer.weight_decay = 0.01;
  c.optimizer.schedule = LrSchedule::kCosine;
  c.optimizer.warmup_steps = 1;
  c.optimizer.total_steps = 4;
  c.policy.clip_high = 0.28;
  return c;
}

SftBatch sft(int salt) {
  SftBatch b;
  for (int i = 0; i < 3; ++i) b.sequences.push_back({tokens(9 + i, salt + i), {}});
  return b;
}

GrpoBatch grpo(int salt) {
  GrpoBatch b;
  for (int i = 0; i < 4; ++i) {
    GrpoSample s;
    s.tokens = tokens(8 + i, salt + i);
    s.n_prompt = 3;
    s.reward = float(i % 2);
    s.group = i / 2;
    b.samples.push_back(std::move(s));
  }
  return b;
}

// Steps [from, to) of a fixed schedule: SFT on even steps, GRPO on odd ones.
std::vector<double> train(Trainer& t, int from, int to) {
  std::vector<double> losses;
  for (int i = from; i < to; ++i) {
    auto s = i % 2 == 0 ? t.sft_step(sft(i)) : t.grpo_step(grpo(i));
    EXPECT_TRUE(s) << s.status().to_string();
    losses.push_back(s ? s->loss : 0.0);
  }
  return losses;
}

TEST(Checkpoint, ResumeIsBitIdentical) {
  const std::string dir = test::make_model("qwen2", /*tie=*/true);
  auto straight = Trainer::create(config(dir));
  ASSERT_TRUE(straight) << straight.status().to_string();
  const std::vector<double> want = train(**straight, 0, 4);

  auto first = Trainer::create(config(dir));
  ASSERT_TRUE(first);
  std::vector<double> got = train(**first, 0, 2);
  const std::string ckpt = test::temp_dir("checkpoint") + "/step-2";
  ASSERT_TRUE((*first)->save_checkpoint(ckpt).is_ok());
  first->reset();

  auto resumed = Trainer::create(config(dir));
  ASSERT_TRUE(resumed);
  Status st = (*resumed)->load_checkpoint(ckpt);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ((*resumed)->step(), 2);
  for (double l : train(**resumed, 2, 4)) got.push_back(l);

  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << "step " << i;  // bitwise
  const auto a = (*straight)->parameters(), b = (*resumed)->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(std::memcmp(a[i].data, b[i].data, size_t(a[i].numel) * 4), 0) << a[i].name;
  }
  EXPECT_EQ((*resumed)->step(), 4);
}

TEST(Checkpoint, IsAModelFolderAndRejectsDamage) {
  const std::string dir = test::make_model("llama");
  auto t = Trainer::create(config(dir));
  ASSERT_TRUE(t);
  train(**t, 0, 1);
  const std::string ckpt = test::temp_dir("checkpoint_folder") + "/ckpt";
  ASSERT_TRUE((*t)->save_checkpoint(ckpt).is_ok());
  // The engine loads it as it is (HF layout, F32).
  auto m = Model::load(ckpt, {.n_threads = 1, .quantization = {}});
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ((*m)->weight_dtype(), DType::kF32);
  // Saving again over it replaces it whole.
  train(**t, 1, 2);
  ASSERT_TRUE((*t)->save_checkpoint(ckpt).is_ok());

  auto other = Trainer::create(config(dir));
  ASSERT_TRUE(other);
  const std::vector<float> before((*other)->parameters()[0].data, (*other)->parameters()[0].data + 16);
  std::filesystem::remove(ckpt + "/optimizer.safetensors");
  Status st = (*other)->load_checkpoint(ckpt);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("optimizer.safetensors"), std::string::npos) << st.message();
  EXPECT_FALSE((*other)->load_checkpoint(dir).is_ok());  // a plain model folder is not a checkpoint
  // Nothing changed.
  EXPECT_EQ(std::memcmp(before.data(), (*other)->parameters()[0].data, 16 * 4), 0);
  EXPECT_EQ((*other)->step(), 0);
}

}  // namespace
}  // namespace tidal::rl
