#include "tidal/rl/adamw.h"

#include <cmath>

namespace tidal::rl {

AdamW::AdamW(std::vector<torch::Tensor> params, std::vector<bool> decay)
    : params_(std::move(params)), decay_(std::move(decay)) {}

void AdamW::step(double lr, const OptimizerConfig& c) {
  torch::NoGradGuard no_grad;
  if (m_.empty()) {
    for (const torch::Tensor& p : params_) {
      m_.push_back(torch::zeros_like(p));
      v_.push_back(torch::zeros_like(p));
    }
  }
  ++t_;
  const double bc1 = 1.0 - std::pow(c.beta1, double(t_));
  const double bc2 = 1.0 - std::pow(c.beta2, double(t_));
  const double bc2_sqrt = std::sqrt(bc2);
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor p = params_[i];
    const torch::Tensor& g = p.grad();
    if (!g.defined()) continue;
    if (decay_[i] && c.weight_decay != 0) p.mul_(1.0 - lr * c.weight_decay);
    m_[i].mul_(c.beta1).add_(g, 1.0 - c.beta1);
    v_[i].mul_(c.beta2).addcmul_(g, g, 1.0 - c.beta2);
    const torch::Tensor denom = (v_[i].sqrt() / bc2_sqrt).add_(c.eps);
    p.addcdiv_(m_[i], denom, -lr / bc1);
  }
}

void AdamW::set_state(int64_t n_steps, std::vector<torch::Tensor> exp_avg, std::vector<torch::Tensor> exp_avg_sq) {
  t_ = n_steps;
  m_ = std::move(exp_avg);
  v_ = std::move(exp_avg_sq);
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().norm());
  }
  if (norms.empty()) return 0.0;
  const double total = torch::stack(norms).norm().item<double>();
  if (max_norm > 0) {
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
      for (const torch::Tensor& p : params) {
        if (p.grad().defined()) p.grad().mul_(coef);
      }
    }
  }
  return total;
}

}  // namespace tidal::rl
