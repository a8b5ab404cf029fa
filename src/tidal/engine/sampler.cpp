#include "tidal/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tidal/kernels/kernel_table.h"
#include "tidal/kernels/ops.h"

namespace tidal {

double Sampler::uniform(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + counter * 0xd1b54a32d192ed03ull + 0x94d049bb133111ebull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1)
}

namespace {

// Candidate order: higher value first, lower id on ties.
struct ByValueDesc {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

}  // namespace

int32_t Sampler::sample(const float* logits, const Sequence& s, TokenLogprob* lp) {
  const SamplingParams& p = *s.params;
  const int64_t V = vocab_;
  // Raw log-probabilities are logits[t] - lse (ops::log_softmax's values), computed where needed.
  // prob_id_ keeps exp(logits - max): the sampling probabilities too when nothing changes the
  // logits (temperature 1, no penalties: RL's usual setting).
  const KernelTable& kt = kernels();
  const float raw_max = ops::max_of(logits, V);
  prob_id_.resize(size_t(V));
  const double raw_sum = kt.exp_sum(logits, raw_max, prob_id_.data(), V);
  const double lse = double(raw_max) + std::log(raw_sum);

  // w: the logits after penalties and temperature (a copy only when they change them).
  const float* w = logits;
  const bool penalized = p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0;
  const float inv_t = p.temperature == 0.0 ? 1.0f : float(1.0 / p.temperature);
  if (penalized || inv_t != 1.0f) {
    work_.assign(logits, logits + V);
    w = work_.data();
  }
  if (penalized) {
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
    chosen = int32_t(std::max_element(w, w + V) - w);  // first max: lowest id
    lp->sampling_logprob = 0.0f;
  } else {
    if (inv_t != 1.0f) {
      for (auto& x : work_) x *= inv_t;
    }
    const ByValueDesc cmp{w};
    // The candidates: either the first n of `order_` (sorted, probabilities in prob_ in that
    // order) or, with no filter at all, every token in id order (probabilities in prob_id_).
    // Probabilities are exp(w - max) in F32 (exp_sum), their sums in double.
    const int64_t k = (p.top_k > 0 && p.top_k < V) ? p.top_k : V;
    const bool filter = k < V || p.top_p < 1.0 || p.min_p > 0.0;
    double sum;
    int64_t n = V;
    const float* prob;
    // Sorts order_[from, to) so that order_[0, to) holds the `to` best candidates in order, given
    // that order_[0, from) already holds the `from` best (selection, then a sort of the prefix:
    // much cheaper than a heap-based partial sort when the prefix is thousands long).
    auto sort_prefix = [&](int64_t from, int64_t to) {
      if (to < V) std::nth_element(order_.begin() + from, order_.begin() + to, order_.end(), cmp);
      std::sort(order_.begin() + from, order_.begin() + to, cmp);
    };
    if (k < V) {
      order_.resize(size_t(V));
      std::iota(order_.begin(), order_.end(), 0);
      sort_prefix(0, k);
      prob_.resize(size_t(k));
      for (int64_t i = 0; i < k; ++i) prob_[size_t(i)] = w[order_[size_t(i)]];
      sum = kt.exp_sum(prob_.data(), prob_[0], prob_.data(), k);
      n = k;
      prob = prob_.data();
    } else {
      sum = w == logits ? raw_sum : kt.exp_sum(w, ops::max_of(w, V), prob_id_.data(), V);
      prob = prob_id_.data();
      if (filter) {
        // top-p / min-p need the most likely tokens in order, but rarely all of them: sort a
        // prefix (256) and widen it (x8) until it contains the cut (the same prefix a full sort
        // gives).
        order_.resize(size_t(V));
        std::iota(order_.begin(), order_.end(), 0);
        const double need = p.top_p * sum;
        double cum = 0;
        bool cut = false;
        for (int64_t done = 0;; done = n) {
          n = std::min(V, done == 0 ? int64_t(256) : done * 8);
          sort_prefix(done, n);
          const float thresh = float(p.min_p) * prob_id_[size_t(order_[0])];
          for (int64_t i = done; i < n && !cut; ++i) {
            const float pi = prob_id_[size_t(order_[size_t(i)])];
            cum += pi;
            cut = (p.top_p < 1.0 && cum >= need) || (p.min_p > 0.0 && pi < thresh);
          }
          if (cut || n == V) break;
        }
        prob_.resize(size_t(n));
        for (int64_t i = 0; i < n; ++i) prob_[size_t(i)] = prob_id_[size_t(order_[size_t(i)])];
        prob = prob_.data();
      }
    }
    int64_t keep = n;
    if (p.top_p < 1.0) {  // smallest prefix with cumulative probability >= top_p
      double cum = 0;
      for (int64_t i = 0; i < n; ++i) {
        cum += prob[i];
        if (cum >= p.top_p * sum) { keep = i + 1; break; }
      }
    }
    if (p.min_p > 0.0) {  // drop tokens below min_p * p_max
      const float thresh = float(p.min_p) * prob[0];
      int64_t m = 1;
      while (m < keep && prob[m] >= thresh) ++m;
      keep = m;
    }
    double kept_sum = 0;
    for (int64_t i = 0; i < keep; ++i) kept_sum += prob[i];
    double u = uniform(s.seed, uint64_t(s.n_output())) * kept_sum;
    int64_t pick = keep - 1;
    for (int64_t i = 0; i < keep; ++i) {
      u -= prob[i];
      if (u < 0) { pick = i; break; }
    }
    chosen = filter ? order_[size_t(pick)] : int32_t(pick);
    lp->sampling_logprob = float(std::log(double(prob[pick]) / kept_sum));
  }

  lp->id = chosen;
  lp->logprob = float(double(logits[chosen]) - lse);
  lp->top.clear();
  if (p.logprobs > 0) {
    const int64_t n = std::min<int64_t>(p.logprobs, V);
    order_.resize(size_t(V));
    std::iota(order_.begin(), order_.end(), 0);
    std::partial_sort(order_.begin(), order_.begin() + n, order_.end(), ByValueDesc{logits});
    for (int64_t i = 0; i < n; ++i) {
      const int32_t t = order_[size_t(i)];
      lp->top.emplace_back(t, float(double(logits[t]) - lse));
    }
  }
  return chosen;
}

}  // namespace tidal
