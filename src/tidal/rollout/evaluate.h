// Evaluation: a task's held-out split, greedy and sampled, through any generation backend.
#pragma once

#include <cstdint>
#include <string>

#include "tidal/core/status.h"
#include "tidal/rollout/backend.h"
#include "tidal/rollout/task.h"

namespace tidal::rollout {

struct EvalResult {
  std::string split;
  int64_t n = 0;                 // instances (0 .. n-1 of the split)
  double accuracy = 0;           // greedy (temperature 0): fraction correct
  double sampled_reward = 0;     // mean reward of `samples` samples per instance at `temperature`
  double sampled_accuracy = 0;
  int64_t failed = 0;            // trajectories that failed (counted as wrong)
  double seconds = 0;
};

// Runs instances 0 .. n-1 of `split` once greedily and (samples > 0) `samples` times at
// `temperature`, multi-turn as in training (RolloutManager). The backend must be idle.
Expected<EvalResult> evaluate(const Task& task, GenerationBackend& backend, const Tokenizer& tokenizer,
                              const std::string& split, int64_t n, int32_t samples, double temperature,
                              uint64_t seed);

}  // namespace tidal::rollout
