// Training batches: what the RL loop hands the trainer. Plain data, no torch.
//
// Token positions follow the engine's prompt-logprob convention: the log-probability of
// tokens[t] is predicted from tokens[0..t-1], so a sequence of n tokens has n - 1 scored
// positions (t = 1 .. n-1) and token 0 is never scored.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace tidal::rl {

// Supervised fine-tuning: cross-entropy on the tokens whose mask is non-zero.
struct SftSequence {
  std::vector<int32_t> tokens;
  // One weight per token (same length as tokens); loss_mask[t] weights the prediction of
  // tokens[t] (loss_mask[0] is ignored). Empty: every token t >= 1 counts with weight 1.
  std::vector<float> loss_mask;
};
struct SftBatch {
  std::vector<SftSequence> sequences;
};

// One sampled completion of a GRPO/PPO batch: tokens = prompt (n_prompt tokens) + completion.
struct GrpoSample {
  std::vector<int32_t> tokens;
  int32_t n_prompt = 0;  // >= 1; the completion is tokens[n_prompt ..] and must not be empty
  float reward = 0;
  int32_t group = 0;     // samples of the same prompt share a group id (advantage baseline)
  // Precomputed advantage; otherwise it is group-normalised from the rewards (see advantages.h).
  std::optional<float> advantage;
  // Per completion token (length tokens.size() - n_prompt), all optional (empty = absent):
  std::vector<float> loss_mask;         // 0 excludes a token (e.g. tool output); default all 1
  std::vector<float> rollout_logprobs;  // the inference engine's logprobs: truncated IS correction
  std::vector<float> old_logprobs;      // behaviour policy (PPO epochs); absent: the current policy
  std::vector<float> ref_logprobs;      // reference policy for the KL term; absent: the trainer's
                                        // reference model computes them (TrainerConfig::reference_dir)
};
struct GrpoBatch {
  std::vector<GrpoSample> samples;
};

}  // namespace tidal::rl
