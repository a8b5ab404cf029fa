// The `tidal rl ...` commands: their names and summaries, shared by the binary that runs them
// (tidal-rl, built from cmd_rl_*.cpp with the trainer and libtorch) and by `tidal`, which lists
// them in its help and hands them to tidal-rl (rl_forward.cpp).
#pragma once

namespace tidal::cli::rl_commands {

struct Entry {
  const char* name;
  const char* summary;
};

inline constexpr Entry kRun{"rl", "run an RL job from a TOML config (SFT warm-up + GRPO; docs/rl.md)"};
inline constexpr Entry kAlign{"rl align", "train/inference alignment: engine vs trainer log-probabilities"};
inline constexpr Entry kBenchStep{"rl bench-step", "trainer step throughput (SFT / GRPO) on random batches"};
inline constexpr Entry kBenchSync{"rl bench-sync", "weight-sync bandwidth: trainer -> engine or tidal serve"};
inline constexpr Entry kAll[] = {kRun, kAlign, kBenchStep, kBenchSync};

}  // namespace tidal::cli::rl_commands
