// Trainer: a policy being trained on libtorch (CPU, F32), for SFT and GRPO/PPO.
//
//   auto t = Trainer::create({.model_dir = "models/qwen3-tiny", .optimizer = {.lr = 1e-4}});
//   StepStats s = t->sft_step(batch);         // forward, loss, backward, clip, AdamW, LR schedule
//   StepStats g = t->grpo_step(grpo_batch);   // clipped policy loss (+KL, +truncated IS)
//   t->save_checkpoint("ckpt/step-100");      // HF folder + optimizer + RNG + step
//   t->load_checkpoint("ckpt/step-100");      // exact resume: bit-identical continued training
//   sync.to_engine(*t, engine, version);      // weight_sync.h (WeightSync): trainer -> engine
//
// The model is the engine's decoder (Llama / Qwen2 / Qwen3 dense; model/config.h), loaded from and
// saved to the same Hugging Face folder format, with parameters named as in the checkpoint.
// Parameters, gradients and optimizer state are F32. libtorch stays behind this header (pimpl):
// including it does not pull in torch.
//
// Thread-safety: none; one thread drives a Trainer. Torch's intra-op threads do the parallel work.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tidal/core/dtype.h"
#include "tidal/core/status.h"
#include "tidal/model/config.h"
#include "tidal/rl/batch.h"
#include "tidal/rl/trainer_config.h"

namespace tidal::rl {

struct StepStats {
  int64_t step = 0;         // optimizer steps taken, this one included (0 for *_gradients)
  double loss = 0;          // the step's loss (what was differentiated)
  double grad_norm = 0;     // global L2 norm of the gradients before clipping
  double lr = 0;            // learning rate used by this step
  int64_t n_tokens = 0;     // scored tokens (non-zero mask)
  int64_t n_sequences = 0;
  // Policy steps only (token means over scored tokens):
  double mean_ratio = 0;         // exp(logp - old_logp)
  double clip_fraction = 0;      // tokens whose ratio was clipped (the clipped term was active)
  double kl = 0;                 // k3 estimate of KL(policy || reference) (when kl_coef > 0)
  double tis_weight = 0;         // mean truncated-IS weight (samples with rollout logprobs)
  double tis_clip_fraction = 0;  // tokens whose IS weight hit the cap
  double rollout_abs_delta = 0;  // mean |old_logp - rollout_logp|: the train/inference mismatch
  double mean_advantage = 0;
};

// A parameter or gradient: contiguous row-major F32, `numel` values. The data pointer stays
// valid while the Trainer lives (parameters are updated in place).
struct ParamView {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // nullptr: no gradient yet
  int64_t numel = 0;
};

class Trainer {
 public:
  // Loads config.json and the weights of config.model_dir (converted to F32), the reference
  // model when config.reference_dir is set, sets torch's thread count, and (once per process)
  // checks the BLAS speed. Errors name the file, tensor or field.
  static Expected<std::unique_ptr<Trainer>> create(const TrainerConfig& config);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  const ModelConfig& model_config() const;
  const TrainerConfig& config() const;
  int64_t step() const;           // optimizer steps taken
  double lr_at(int64_t step) const;  // the schedule's LR for 0-based optimizer step `step`
  uint64_t n_parameters() const;

  // One optimizer step on the batch (split into micro-batches of config.micro_batch_seqs
  // sequences with gradient accumulation): zero grads, forward, loss, backward, clip, AdamW.
  // Errors (nothing changed): empty batch, token out of range, bad mask/logprob lengths.
  Expected<StepStats> sft_step(const SftBatch& batch);
  Expected<StepStats> grpo_step(const GrpoBatch& batch);
  // The same forward and backward without the update: gradients() then holds the gradient of
  // the step's loss (tests, debugging).
  Expected<StepStats> sft_gradients(const SftBatch& batch);
  Expected<StepStats> grpo_gradients(const GrpoBatch& batch);

  // Per sequence, log p(tokens[t] | tokens[..t-1]) for t = 1 .. n-1 (no gradient): the same
  // convention as the engine's prompt_logprobs.
  Expected<std::vector<std::vector<float>>> logprobs(const std::vector<std::vector<int32_t>>& sequences);
  // Full next-token log-softmax for one sequence: [n, vocab], row t is the distribution of
  // token t + 1 (the last row predicts past the end).
  Expected<std::vector<float>> next_token_logprobs(const std::vector<int32_t>& tokens);

  // Parameters in checkpoint order, and their gradients (same order; data nullptr when none).
  std::vector<ParamView> parameters() const;
  std::vector<ParamView> gradients() const;

  // A Hugging Face folder loadable by the engine: config.json (torch_dtype set to `dtype`),
  // model.safetensors in `dtype` (F32, F16 or BF16), and the tokenizer files of model_dir.
  Status save_model(const std::string& dir, DType dtype = DType::kF32) const;
  // save_model(dir, F32) + optimizer.safetensors (AdamW moments, RNG state) + trainer_state.json
  // (step, schedule, format version). Written next to dir and renamed into place.
  Status save_checkpoint(const std::string& dir) const;
  // Restores weights, optimizer state, RNG and step from save_checkpoint's folder; the model
  // shape must match. Continued training is bit-identical to never having stopped (same thread
  // count, same batches). On failure nothing changes.
  Status load_checkpoint(const std::string& dir);

  struct Impl;

 private:
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tidal::rl
