#include "tidal/rl/policy_loss.h"

#include <algorithm>

namespace tidal::rl {

PolicyTerms policy_loss(const torch::Tensor& logp, const PolicyInputs& in, const PolicyLossConfig& c) {
  PolicyTerms out;
  const torch::Tensor scored = in.scored;
  const torch::Tensor lp_det = logp.detach();
  const torch::Tensor old = torch::where(in.old_logprobs.isnan(), lp_det, in.old_logprobs);
  const torch::Tensor ratio = (logp - old).exp();
  const torch::Tensor& A = in.advantage;
  const torch::Tensor unclipped = -A * ratio;
  const torch::Tensor clipped = -A * ratio.clamp(1.0 - c.clip_low, 1.0 + c.clip_high);
  torch::Tensor per_token = torch::maximum(unclipped, clipped);

  // Truncated importance sampling: trainer-side behaviour policy vs the engine that sampled.
  const torch::Tensor has_rollout = in.rollout_logprobs.isnan().logical_not().logical_and(scored);
  torch::Tensor w = torch::ones_like(lp_det);
  torch::Tensor capped = torch::zeros_like(scored);
  if (c.tis_cap > 0) {
    const torch::Tensor raw = (old - torch::where(has_rollout, in.rollout_logprobs, old)).exp();
    w = torch::where(has_rollout, raw.clamp_max(c.tis_cap), w);
    capped = has_rollout.logical_and(raw.gt(c.tis_cap));
  }
  per_token = per_token * w;

  torch::Tensor kl;
  if (c.kl_coef > 0) {
    const torch::Tensor ref = torch::where(in.ref_logprobs.isnan(), lp_det, in.ref_logprobs);
    const torch::Tensor d = ref - logp;
    kl = d.exp() - d - 1.0;
    per_token = per_token + c.kl_coef * kl;
  }
  // Unscored positions have coef 0, but their terms may be inf/NaN (padding): select, not multiply.
  out.loss = torch::where(scored, per_token * in.coef, torch::zeros_like(per_token)).sum();

  torch::NoGradGuard no_grad;
  const torch::Tensor sf = scored.to(torch::kFloat64);
  out.n_scored = sf.sum().item<double>();
  out.ratio_sum = (ratio.detach().to(torch::kFloat64) * sf).sum().item<double>();
  out.clipped = (clipped.detach().gt(unclipped.detach()).to(torch::kFloat64) * sf).sum().item<double>();
  if (kl.defined()) out.kl_sum = (kl.detach().to(torch::kFloat64) * sf).sum().item<double>();
  const torch::Tensor rf = has_rollout.to(torch::kFloat64);
  out.n_rollout = rf.sum().item<double>();
  if (out.n_rollout > 0) {
    out.tis_sum = (w.to(torch::kFloat64) * rf).sum().item<double>();
    out.tis_capped = capped.to(torch::kFloat64).sum().item<double>();
    const torch::Tensor delta = (old - torch::where(has_rollout, in.rollout_logprobs, old)).abs();
    out.delta_sum = (delta.to(torch::kFloat64) * rf).sum().item<double>();
  }
  out.loss_value = out.loss.detach().item<double>();
  return out;
}

void PolicyTotals::add(const PolicyTerms& t) {
  loss += t.loss_value;
  sum.n_scored += t.n_scored;
  sum.ratio_sum += t.ratio_sum;
  sum.clipped += t.clipped;
  sum.kl_sum += t.kl_sum;
  sum.n_rollout += t.n_rollout;
  sum.tis_sum += t.tis_sum;
  sum.tis_capped += t.tis_capped;
  sum.delta_sum += t.delta_sum;
}

StepStats PolicyTotals::stats() const {
  StepStats s;
  s.loss = loss;
  const double n = std::max(sum.n_scored, 1.0), r = std::max(sum.n_rollout, 1.0);
  s.mean_ratio = sum.ratio_sum / n;
  s.clip_fraction = sum.clipped / n;
  s.kl = sum.kl_sum / n;
  s.tis_weight = sum.n_rollout > 0 ? sum.tis_sum / r : 0;
  s.tis_clip_fraction = sum.tis_capped / r;
  s.rollout_abs_delta = sum.delta_sum / r;
  return s;
}

}  // namespace tidal::rl
