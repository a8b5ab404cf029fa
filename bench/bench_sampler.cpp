// Google Benchmark: the per-token cost of Sampler::sample on a vocabulary-sized row (32,000
// logits), for the sampling settings RL and serving use. The engine samples every running
// sequence once per step, so at 64 sequences this is paid 64 times per step.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "tidal/engine/sampler.h"

namespace {

// sigma: spread of the logits. 8 is peaked like a trained model's next-token distribution; 1 is
// nearly flat, like a randomly initialised model's (top-p then keeps thousands of tokens).
void run(benchmark::State& state, double temperature, double top_p, int top_k, int logprobs, float sigma) {
  const int64_t V = 32000;
  std::vector<float> logits(static_cast<size_t>(V));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, sigma);
  for (auto& v : logits) v = nd(rng);
  auto p = std::make_shared<tidal::SamplingParams>();
  p->temperature = temperature;
  p->top_p = top_p;
  p->top_k = top_k;
  p->logprobs = logprobs;
  tidal::Sequence s;
  s.params = p;
  s.tokens = {1};
  s.n_prompt = 1;
  s.seed = 7;
  tidal::Sampler sampler(V);
  tidal::TokenLogprob lp;
  for (auto _ : state) {
    benchmark::DoNotOptimize(sampler.sample(logits.data(), s, &lp));
    ++s.seed;  // a new draw each time
  }
}

BENCHMARK_CAPTURE(run, greedy, 0.0, 1.0, -1, 0, 8.0f)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(run, greedy_logprobs5, 0.0, 1.0, -1, 5, 8.0f)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(run, t1, 1.0, 1.0, -1, 0, 8.0f)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(run, t0_7, 0.7, 1.0, -1, 0, 8.0f)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(run, t1_top_p0_9_peaked, 1.0, 0.9, -1, 0, 8.0f)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(run, t1_top_p0_9_flat, 1.0, 0.9, -1, 0, 1.0f)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(run, t0_7_top_k50_top_p0_95, 0.7, 0.95, 50, 0, 8.0f)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
