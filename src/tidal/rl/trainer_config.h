// Trainer configuration: optimizer, LR schedule, policy loss, threads. Plain data, no torch.
#pragma once

#include <cstdint>
#include <string>

#include "tidal/core/dtype.h"

namespace tidal::rl {

enum class LrSchedule { kConstant, kCosine };

struct OptimizerConfig {
  // AdamW (decoupled weight decay, as torch.optim.AdamW).
  double lr = 1e-5;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;  // applied to matrices only (not to norms and biases)
  double max_grad_norm = 1.0; // clip the global L2 norm of all gradients; 0: no clipping
  // Schedule: linear warm-up from lr/warmup_steps to lr over warmup_steps, then constant or
  // cosine decay to lr * min_lr_ratio at total_steps (held there after).
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // cosine horizon (required for kCosine)
  double min_lr_ratio = 0.0;
};

enum class LossAggregation {
  kToken,     // sum over all scored tokens / their number (DAPO, Dr. GRPO style)
  kSequence,  // mean over each sequence's tokens, then mean over sequences (original GRPO)
};

struct PolicyLossConfig {
  // PPO clipped surrogate: ratio clipped to [1 - clip_low, 1 + clip_high] ("clip-higher").
  double clip_low = 0.2, clip_high = 0.2;
  // Group-normalised advantages: A = (r - mean_group) / (std_group + eps); with
  // scale_by_std = false only the mean is removed (Dr. GRPO).
  bool scale_by_std = true;
  double adv_eps = 1e-6;
  // KL penalty to a reference policy, k3 estimator exp(ref - logp) - (ref - logp) - 1, added to
  // the per-token loss with this coefficient (0: off).
  double kl_coef = 0.0;
  LossAggregation aggregation = LossAggregation::kToken;
  // Truncated importance sampling for the rollout/trainer mismatch: each token's loss is scaled
  // by min(exp(old_logprob - rollout_logprob), tis_cap) (no gradient through the weight). 0: off.
  // Applied only to samples that carry rollout_logprobs.
  double tis_cap = 2.0;
};

struct TrainerConfig {
  std::string model_dir;      // Hugging Face folder (config.json + safetensors); F32/F16/BF16
  std::string reference_dir;  // frozen reference policy for KL (when samples carry no ref_logprobs)
  // Threads for torch's intra-op parallelism and for OpenBLAS (set together: OpenBLAS otherwise
  // keeps one spinning thread per core beside torch's); 0: keep the libraries' defaults (all
  // cores). On a busy machine 1 is often fastest for small models (docs/trainer.md).
  int n_threads = 0;
  // Raise glibc malloc's trim threshold (process-wide, mallopt) so the large activation buffers
  // of every step are reused instead of being returned to the OS and page-faulted back in
  // (measured: ~20% of a small model's step). The engine preallocates and is unaffected.
  bool tune_malloc = true;
  // Gradient accumulation: at most this many sequences per forward/backward pass (0: the whole
  // batch at once). The step's gradient is the same as without accumulation (up to summation
  // order): every loss term is normalised by whole-batch counts.
  int64_t micro_batch_seqs = 0;
  OptimizerConfig optimizer;
  PolicyLossConfig policy;
  uint64_t seed = 0;          // seeds the trainer's RNG (saved and restored by checkpoints)
  // Engine emulation (docs/alignment.md): the forward pass rounds the weights / K and V to the
  // dtype the rollout engine stores them in (kBF16 or kF16; kF32 = off), straight-through (the
  // F32 parameters get the gradient unchanged). With both set to the engine's dtypes the
  // trainer's logprobs are those of the policy the engine samples from.
  DType emulate_weight_dtype = DType::kF32;
  DType emulate_kv_dtype = DType::kF32;
  // Measure a 1024^3 F32 matmul once per process and warn on stderr when the BLAS is implausibly
  // slow (< 20 GFLOP/s: the reference BLAS instead of OpenBLAS).
  bool check_blas = true;
};

}  // namespace tidal::rl
