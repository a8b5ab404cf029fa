#include "tidal/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tidal/kernels/ops.h"

namespace tidal {

double Sampler::uniform(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + counter * 0xd1b54a32d192ed03ull + 0x94d049bb133111ebull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
}

int32_t Sampler::sample(const float* logits, const Sequence& s, TokenLogprob* lp) {
  const SamplingParams& p = *s.params;
  const int64_t V = vocab_;
  raw_lp_.resize(size_t(V));
  ops::log_softmax(logits, raw_lp_.data(), V);

  work_.assign(logits, logits + V);
  // Penalties.
  if (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    counts_.assign(size_t(V), 0);
    for (int64_t i = s.n_prompt; i < s.n_tokens(); ++i) ++counts_[size_t(s.tokens[size_t(i)])];
    if (p.repetition_penalty != 1.0) {
      std::vector<bool> seen(size_t(V), false);
      for (int32_t t : s.tokens) seen[size_t(t)] = true;
      const float rp = float(p.repetition_penalty);
      for (int64_t i = 0; i < V; ++i) {
        if (seen[size_t(i)]) work_[size_t(i)] = work_[size_t(i)] > 0 ? work_[size_t(i)] / rp : work_[size_t(i)] * rp;
      }
    }
    for (int64_t i = 0; i < V; ++i) {
      const int32_t c = counts_[size_t(i)];
      if (c > 0) work_[size_t(i)] -= float(p.presence_penalty + p.frequency_penalty * c);
    }
  }

  int32_t chosen;
  if (p.temperature == 0.0) {
    chosen = int32_t(std::max_element(work_.begin(), work_.end()) - work_.begin());  // first max: lowest id
    lp->sampling_logprob = 0.0f;
  } else {
    const float inv_t = float(1.0 / p.temperature);
    for (auto& x : work_) x *= inv_t;
    // Candidates sorted by logit, descending (ties: lower id first), truncated by top-k.
    order_.resize(size_t(V));
    std::iota(order_.begin(), order_.end(), 0);
    int64_t k = (p.top_k > 0 && p.top_k < V) ? p.top_k : V;
    auto cmp = [&](int32_t a, int32_t b) {
      return work_[size_t(a)] > work_[size_t(b)] || (work_[size_t(a)] == work_[size_t(b)] && a < b);
    };
    if (k < V) {
      std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), cmp);
    } else if (p.top_p < 1.0 || p.min_p > 0.0) {
      std::sort(order_.begin(), order_.end(), cmp);
    }
    // Probabilities of the kept candidates (softmax over them, in double).
    const double mx = work_[size_t(order_[0])];
    std::vector<double> prob(static_cast<size_t>(k));
    double sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += prob[size_t(i)] = std::exp(double(work_[size_t(order_[size_t(i)])]) - mx);
    int64_t keep = k;
    if (p.top_p < 1.0) {  // smallest prefix with cumulative probability >= top_p
      double cum = 0;
      for (int64_t i = 0; i < k; ++i) {
        cum += prob[size_t(i)] / sum;
        if (cum >= p.top_p) { keep = i + 1; break; }
      }
    }
    if (p.min_p > 0.0) {  // drop tokens below min_p * p_max (p_max = prob[0] / sum)
      const double thresh = p.min_p * prob[0];
      int64_t n = 1;
      while (n < keep && prob[size_t(n)] >= thresh) ++n;
      keep = n;
    }
    double kept_sum = 0;
    for (int64_t i = 0; i < keep; ++i) kept_sum += prob[size_t(i)];
    double u = uniform(s.seed, uint64_t(s.n_output())) * kept_sum;
    int64_t pick = keep - 1;
    for (int64_t i = 0; i < keep; ++i) {
      u -= prob[size_t(i)];
      if (u < 0) { pick = i; break; }
    }
    chosen = order_[size_t(pick)];
    lp->sampling_logprob = float(std::log(prob[size_t(pick)] / kept_sum));
  }

  lp->id = chosen;
  lp->logprob = raw_lp_[size_t(chosen)];
  lp->top.clear();
  if (p.logprobs > 0) {
    const int64_t n = std::min<int64_t>(p.logprobs, V);
    std::vector<int32_t> idx(static_cast<size_t>(V));
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int32_t a, int32_t b) {
      return raw_lp_[size_t(a)] > raw_lp_[size_t(b)] || (raw_lp_[size_t(a)] == raw_lp_[size_t(b)] && a < b);
    });
    for (int64_t i = 0; i < n; ++i) lp->top.emplace_back(idx[size_t(i)], raw_lp_[size_t(idx[size_t(i)])]);
  }
  return chosen;
}

}  // namespace tidal
