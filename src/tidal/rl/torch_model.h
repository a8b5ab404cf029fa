// TorchModel: the engine's decoder (Llama / Qwen2 / Qwen3 dense) as differentiable libtorch ops.
// Internal to src/tidal/rl (includes torch); the public API is trainer.h.
//
// The forward pass follows model/decoder.cpp term by term, and computes the pieces where the two
// could drift the way the engine does (see docs/alignment.md):
//   * RoPE: cos/sin tables formed in double from the engine's own F32 inv_freq
//     (ModelConfig::rope_inv_freq), angle = double(pos) * double(inv_freq), then rounded to F32;
//     rotation a*c - b*s, b*c + a*s in F32 as ops::rope does.
//   * RMSNorm: (x * rsqrt(mean(x^2) + eps)) * w, the engine's order (its sum of squares is in
//     double, ours in F32: measured to change nothing above the matmul noise).
//   * Log-softmax: logit - logsumexp(row) in F32 (the engine sums in double; the difference is
//     ~1e-7 relative, below the other sources, and F32 keeps [B, T, V] at 4 bytes per entry).
//
//   x = embed[tokens]                                              [B, T, H]
//   per layer: h = rms_norm(x) * w;  q,k,v = h W^T (+b);  q,k = qk_norm (Qwen3);  rope(q, k)
//              x += softmax(q k^T / sqrt(hd) + causal) v  Wo^T (+bo)   (GQA: head h reads kv h/group)
//              x += (silu(h Wg^T) * (h Wu^T)) Wd^T      with h = rms_norm(x) * w2
//   logits = rms_norm(x) * w_out @ lm_head^T                        [B, T, V]
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

#include "tidal/core/dtype.h"
#include "tidal/core/status.h"
#include "tidal/model/config.h"

namespace tidal::rl {

class TorchModel {
 public:
  // Every weight of `dir` (model folder or checkpoint), converted to F32, requires_grad.
  static Expected<std::unique_ptr<TorchModel>> load(const std::string& dir);

  // Engine emulation (docs/alignment.md): the forward pass rounds the weights and/or K and V to
  // the dtype the engine stores them in (BF16, F16; F32 = off), straight-through: values are
  // rounded, gradients pass unchanged to the F32 parameters. Then the trainer computes the
  // policy the engine samples from, not its F32 neighbour.
  void set_rounding(DType weights, DType kv) {
    round_weights_ = weights;
    round_kv_ = kv;
  }

  const ModelConfig& config() const { return config_; }
  bool tied_lm_head() const { return tied_; }
  // In checkpoint order (model/tensor_layout.h); a tied LM head has no entry of its own.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<torch::Tensor>& parameters() const { return params_; }
  // Copies `dir`'s weights into the parameters in place (shapes must match); nothing changes on
  // failure.
  Status copy_weights_from(const std::string& dir);

  // tokens [B, T] int64 (right padding is harmless: attention is causal) -> logits [B, T, V].
  torch::Tensor logits(const torch::Tensor& tokens) const;
  // log p(tokens[:, t+1] | tokens[:, ..t]) -> [B, T-1], differentiable, computed only where
  // `scored` [B, T-1] (bool) is true (0 elsewhere): the LM head, the largest product of a small
  // model, runs on the scored rows only (completions, not prompts or padding).
  torch::Tensor token_logprobs(const torch::Tensor& tokens, const torch::Tensor& scored) const;
  // Full log-softmax [B, T, V], computed as token_logprobs computes its entries.
  torch::Tensor log_softmax(const torch::Tensor& tokens) const;

 private:
  TorchModel() = default;
  torch::Tensor rope_table(int64_t T) const;  // [2, T, 1, hd/2] (cos, sin), F32
  // The weights as the forward pass sees them (rounded when emulating a 16-bit engine).
  std::vector<torch::Tensor> forward_weights() const;
  // The last layer's output [B, T, H], before the final norm.
  torch::Tensor hidden(const torch::Tensor& tokens, const std::vector<torch::Tensor>& w) const;

  ModelConfig config_;
  bool tied_ = false;
  DType round_weights_ = DType::kF32, round_kv_ = DType::kF32;

  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  struct LayerIndex {
    size_t attn_norm, wq, bq, wk, bk, wv, bv, wo, bo, q_norm, k_norm, ffn_norm, wg, bg, wu, bu, wd, bd;
  };
  static constexpr size_t kNone = size_t(-1);
  std::vector<LayerIndex> layers_;
  size_t embed_ = 0, out_norm_ = 0, lm_head_ = 0;
  std::vector<float> inv_freq_;
};

}  // namespace tidal::rl
