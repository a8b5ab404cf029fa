#include "tidal/rollout/evaluate.h"

#include <chrono>

#include "tidal/rollout/rollout_manager.h"

namespace tidal::rollout {
namespace {

struct Tally {
  double correct = 0, reward = 0, count = 0;
  int64_t failed = 0;
};

Expected<Tally> run(const Task& task, GenerationBackend& backend, const Tokenizer& tokenizer, const std::string& split,
                    int64_t n, int32_t group_size, double temperature, uint64_t seed) {
  RolloutConfig c;
  c.split = split;
  c.sequential_instances = true;
  c.group_size = group_size;
  c.groups_per_step = int32_t(n);
  c.max_groups = uint64_t(n);
  c.max_policy_lag = 0;
  c.temperature = temperature;
  c.seed = seed;
  RolloutManager m(task, backend, tokenizer, c);
  m.start(backend.weight_version());
  auto groups = m.take(size_t(n), backend.weight_version());
  m.stop();
  if (!groups) return groups.status();
  Tally t;
  for (const Group& g : *groups) {
    for (const Trajectory& tr : g.samples) {
      t.correct += tr.correct ? 1 : 0;
      t.reward += tr.reward;
      t.count += 1;
      t.failed += tr.error.empty() ? 0 : 1;
    }
  }
  return t;
}

}  // namespace

Expected<EvalResult> evaluate(const Task& task, GenerationBackend& backend, const Tokenizer& tokenizer,
                              const std::string& split, int64_t n, int32_t samples, double temperature,
                              uint64_t seed) {
  if (n < 1) return invalid_argument("evaluate: need at least one instance");
  const auto t0 = std::chrono::steady_clock::now();
  EvalResult r;
  r.split = split;
  r.n = n;
  auto greedy = run(task, backend, tokenizer, split, n, 1, 0.0, seed);
  if (!greedy) return greedy.status();
  r.accuracy = greedy->correct / greedy->count;
  r.failed = greedy->failed;
  if (samples > 0) {
    auto sampled = run(task, backend, tokenizer, split, n, samples, temperature, seed + 1);
    if (!sampled) return sampled.status();
    r.sampled_reward = sampled->reward / sampled->count;
    r.sampled_accuracy = sampled->correct / sampled->count;
    r.failed += sampled->failed;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace tidal::rollout
