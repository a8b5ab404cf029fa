#include "tidal/engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

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

// A vocabulary-sized row: top-p / min-p sort only a prefix of the candidates and widen it until
// it holds the cut. The support must be exactly what a full sort gives (computed here in double),
// for a peaked row (the cut in the first 256) and a flat one (the cut thousands deep).
TEST(SamplerTest, TopPAndMinPOnAFullVocabularyMatchAFullSort) {
  const int64_t V = 32000;
  std::mt19937 rng(3);
  for (float sigma : {8.0f, 0.5f}) {
    std::normal_distribution<float> nd(0.0f, sigma);
    std::vector<float> logits(static_cast<size_t>(V));
    for (auto& v : logits) v = nd(rng);
    std::vector<int32_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    std::vector<int64_t> rank(static_cast<size_t>(V));
    std::vector<double> prob(static_cast<size_t>(V));
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) {
      rank[size_t(order[size_t(i)])] = i;
      sum += prob[size_t(i)] = std::exp(double(logits[size_t(order[size_t(i)])]) - logits[size_t(order[0])]);
    }
    for (auto [top_p, min_p] : {std::pair{0.9, 0.0}, std::pair{1.0, 0.05}}) {
      int64_t keep = V;
      double cum = 0;
      for (int64_t i = 0; i < V && top_p < 1.0; ++i) {
        cum += prob[size_t(i)];
        if (cum >= top_p * sum) { keep = i + 1; break; }
      }
      if (min_p > 0.0) {
        keep = 1;
        while (keep < V && prob[size_t(keep)] >= min_p * prob[0]) ++keep;
      }
      double kept = 0;
      for (int64_t i = 0; i < keep; ++i) kept += prob[size_t(i)];
      SamplingParams p;
      p.top_p = top_p;
      p.min_p = min_p;
      Sampler sampler(V);
      int64_t deepest = 0;
      const uint64_t draws = sigma > 1.0f ? 150 : 40;  // the flat row sorts thousands per draw
      for (uint64_t seed = 0; seed < draws; ++seed) {
        TokenLogprob lp;
        const int32_t t = sampler.sample(logits.data(), seq_with(p, {0}, 1, seed), &lp);
        const int64_t r = rank[size_t(t)];
        ASSERT_LT(r, keep) << "sigma " << sigma << " top_p " << top_p << " min_p " << min_p;
        deepest = std::max(deepest, r);
        EXPECT_NEAR(lp.sampling_logprob, std::log(prob[size_t(r)] / kept), 1e-4);
      }
      // Not too narrow either: the draws reach the deep half of the kept set.
      EXPECT_GT(deepest, keep / 2) << "sigma " << sigma << " keep " << keep;
      if (sigma > 1.0f && top_p < 1.0) EXPECT_LT(keep, 256);
      if (sigma < 1.0f) EXPECT_GT(keep, 2048);
    }
  }
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
