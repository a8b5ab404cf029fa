// The RL run behind `tidal rl CONFIG.toml` (docs/rl.md):
//
//   model (initialised by Tidal, or a folder) -> SFT warm-up on the task's demonstrations ->
//   evaluation -> GRPO: RolloutManager (event-driven, bounded staleness, partial rollouts) on a
//   generation backend (in-process engine or `tidal serve` instances) -> trainer step -> weights
//   published to the backend -> ... -> final evaluation (test split + probes).
//
// Outputs in run.dir: metrics.jsonl (one object per SFT log point, GRPO step and evaluation),
// ledger.jsonl (every trajectory trained on, once), curve.svg (learning curve), sft/ (the SFT
// checkpoint), ckpt/step-N/ (GRPO checkpoints), state.json (what --resume continues from) and
// result.json (the summary, also returned).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"
#include "tidal/rl/rl_config.h"

namespace tidal::rl {

struct RlRunOptions {
  bool resume = false;  // continue the run in config.run.dir from its last checkpoint
  // Progress lines (one per log point); the CLI draws them as a progress bar on a terminal.
  std::function<void(const std::string& line, bool transient)> progress;
  // Stop after this many GRPO steps of this invocation (tests: simulate a killed run); 0: no limit.
  int64_t stop_after_steps = 0;
  // A fresh run saves these in run.dir (config.toml, overrides.txt) so `tidal rl --resume DIR`
  // needs nothing else.
  std::string config_text;
  std::vector<std::string> overrides;
};

// Runs (or resumes) the whole job. Returns the summary: sft_accuracy, rl_accuracy,
// sft_sampled_reward, rl_sampled_reward, probe_*_accuracy (when the task has probes), wall_s, ...
Expected<nlohmann::json> run_rl(const RlConfig& config, const RlRunOptions& options);

}  // namespace tidal::rl
