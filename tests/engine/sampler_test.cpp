#include "tidal/engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace tidal {
namespace {

Sequence seq_with(SamplingParams p, std::vector<int32_t> tokens = {0}, int64_t n_prompt = 1, uint64_t seed = 1) {
  Sequence s;
  s.params = std::make_shared<const SamplingParams>(p);
  s.tokens = std::move(tokens);
  s.n_prompt = n_prompt;
  s.seed = seed;
  return s;
}

TEST(SamplerTest, GreedyAndRawLogprobs) {
  Sampler sampler(4);
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, -1.0f};
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = 2;
  TokenLogprob lp;
  EXPECT_EQ(sampler.sample(logits.data(), seq_with(p), &lp), 1);  // tie -> lowest id
  const double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(-1.0));
  EXPECT_NEAR(lp.logprob, 3.0 - lse, 1e-6);
  ASSERT_EQ(lp.top.size(), 2u);
  EXPECT_EQ(lp.top[0].first, 1);
  EXPECT_EQ(lp.top[1].first, 2);
}

TEST(SamplerTest, TopKTopPMinPRestrictTheSupport) {
  Sampler sampler(5);
  std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -3.0f};
  auto support = [&](SamplingParams p) {
    std::map<int32_t, int> seen;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      TokenLogprob lp;
      seen[sampler.sample(logits.data(), seq_with(p, {0}, 1, seed), &lp)]++;
    }
    return seen;
  };
  SamplingParams k2;
  k2.top_k = 2;
  auto s = support(k2);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_TRUE(s.count(0) && s.count(1));
  SamplingParams p1;
  p1.top_p = 0.5;  // p(0) = 0.53 alone reaches 0.5
  EXPECT_EQ(support(p1).size(), 1u);
  SamplingParams m;
  m.min_p = 0.3;  // keeps tokens with p >= 0.3 * p_max: ids 0, 1 (0.37 ratio), not 2 (0.22)
  s = support(m);
  EXPECT_EQ(s.size(), 2u);
  SamplingParams all;
  EXPECT_EQ(support(all).size(), 5u);
}

TEST(SamplerTest, SeededDrawsAreReproducibleAndFollowTheDistribution) {
  Sampler sampler(3);
  std::vector<float> logits = {0.0f, std::log(2.0f), std::log(7.0f)};  // p = 0.1, 0.2, 0.7
  SamplingParams p;
  int counts[3] = {0, 0, 0};
  for (uint64_t seed = 0; seed < 4000; ++seed) {
    TokenLogprob a, b;
    const int32_t x = sampler.sample(logits.data(), seq_with(p, {0}, 1, seed), &a);
    EXPECT_EQ(x, sampler.sample(logits.data(), seq_with(p, {0}, 1, seed), &b));
    EXPECT_NEAR(a.sampling_logprob, a.logprob, 1e-5);  // T = 1, no filtering: same distribution
    counts[x]++;
  }
  EXPECT_NEAR(counts[0] / 4000.0, 0.1, 0.03);
  EXPECT_NEAR(counts[2] / 4000.0, 0.7, 0.03);
}

TEST(SamplerTest, Penalties) {
  Sampler sampler(3);
  std::vector<float> logits = {1.0f, 1.1f, 0.0f};
  SamplingParams p;
  p.temperature = 0;
  TokenLogprob lp;
  EXPECT_EQ(sampler.sample(logits.data(), seq_with(p), &lp), 1);
  p.presence_penalty = 0.5;  // token 1 already generated -> 1.1 - 0.5 < 1.0
  EXPECT_EQ(sampler.sample(logits.data(), seq_with(p, {2, 1}, 1), &lp), 0);
  SamplingParams r;
  r.temperature = 0;
  r.repetition_penalty = 2.0;  // token 1 in the prompt: 1.1 / 2
  EXPECT_EQ(sampler.sample(logits.data(), seq_with(r, {1}, 1), &lp), 0);
  EXPECT_NEAR(lp.logprob, std::log(std::exp(1.0) / (std::exp(1.0) + std::exp(1.1) + 1.0)), 1e-6);  // raw
}

TEST(SamplingParamsTest, ValidationNamesTheParameter) {
  SamplingParams p;
  p.temperature = -1;
  EXPECT_NE(p.validate(10).message().find("'temperature' must be >= 0"), std::string::npos);
  p = {};
  p.top_p = 1.5;
  EXPECT_NE(p.validate(10).message().find("'top_p'"), std::string::npos);
  p = {};
  p.top_k = -2;
  EXPECT_NE(p.validate(10).message().find("'top_k'"), std::string::npos);
  p = {};
  p.stop_token_ids = {10};
  EXPECT_NE(p.validate(10).message().find("'stop_token_ids'"), std::string::npos);
  p = {};
  p.max_tokens = 0;
  EXPECT_FALSE(p.validate(10).is_ok());
  EXPECT_TRUE(SamplingParams{}.validate(10).is_ok());
}

}  // namespace
}  // namespace tidal
