// The GRPO / PPO policy loss on per-token tensors (internal; includes torch).
//
// For each scored position (a completion token with non-zero mask), with logp the current
// policy's log-probability (differentiable):
//   old    = old_logprobs, or logp.detach() when absent (on-policy: ratio 1, gradient of A * logp)
//   ratio  = exp(logp - old)
//   pg     = max(-A * ratio, -A * clamp(ratio, 1 - clip_low, 1 + clip_high))
//   w      = min(exp(old - rollout), tis_cap)   (truncated IS; 1 without rollout logprobs or cap 0)
//   kl     = exp(ref - logp) - (ref - logp) - 1 (k3; when kl_coef > 0)
//   loss   = sum(coef * (w * pg + kl_coef * kl))
// coef carries the mask and the aggregation (token / sequence) normalised over the whole batch,
// so micro-batch losses add up to the batch loss.
#pragma once

#include <torch/types.h>

#include "tidal/rl/trainer.h"
#include "tidal/rl/trainer_config.h"

namespace tidal::rl {

// All [rows, T-1] F32 (absent values NaN) except `scored` (bool).
struct PolicyInputs {
  torch::Tensor coef, scored, advantage, old_logprobs, rollout_logprobs, ref_logprobs;
};

struct PolicyTerms {
  torch::Tensor loss;  // scalar, differentiable
  // Detached statistics: sums over scored positions, and their counts.
  double n_scored = 0, ratio_sum = 0, clipped = 0, kl_sum = 0;
  double n_rollout = 0, tis_sum = 0, tis_capped = 0, delta_sum = 0;
  double loss_value = 0;
};

PolicyTerms policy_loss(const torch::Tensor& logp, const PolicyInputs& in, const PolicyLossConfig& config);

// Adds up micro-batches' terms into step statistics.
struct PolicyTotals {
  double loss = 0;
  PolicyTerms sum;
  void add(const PolicyTerms& t);
  StepStats stats() const;
};

}  // namespace tidal::rl
