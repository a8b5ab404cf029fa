// AdamW over a list of F32 parameters (internal; includes torch). The update is torch.optim.AdamW's
// (decoupled weight decay, bias-corrected moments, eps added after the square root), written out
// so the state is plain tensors a checkpoint can save and restore bit for bit.
#pragma once

#include <torch/types.h>

#include <vector>

#include "tidal/rl/trainer_config.h"

namespace tidal::rl {

class AdamW {
 public:
  // decay[i]: whether parameter i gets weight decay.
  AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay);

  // One update with learning rate `lr` from each parameter's .grad() (a parameter without a
  // gradient is skipped). The moments are created (zeros) at the first step.
  void step(double lr, const OptimizerConfig& config);

  int64_t n_steps() const { return t_; }
  bool has_state() const { return !m_.empty(); }
  // Moments, in parameter order (empty before the first step).
  const std::vector<torch::Tensor>& exp_avg() const { return m_; }
  const std::vector<torch::Tensor>& exp_avg_sq() const { return v_; }
  // Replaces the state (checkpoint restore). Shapes are the caller's to check.
  void set_state(int64_t n_steps, std::vector<torch::Tensor> exp_avg, std::vector<torch::Tensor> exp_avg_sq);

 private:
  std::vector<torch::Tensor> params_;
  std::vector<bool> decay_;
  std::vector<torch::Tensor> m_, v_;
  int64_t t_ = 0;
};

// Scales every gradient by max_norm / (norm + 1e-6) when the global L2 norm exceeds max_norm
// (as torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace tidal::rl
