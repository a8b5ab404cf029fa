#include "tidal/model/tensor_layout.h"

namespace tidal {

std::vector<TensorShape> decoder_tensor_layout(const ModelConfig& c, bool with_lm_head) {
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  std::vector<TensorShape> out;
  out.push_back({"model.embed_tokens.weight", {V, H}});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {H}});
    out.push_back({p + "self_attn.q_proj.weight", {q_dim, H}});
    if (c.qkv_bias) out.push_back({p + "self_attn.q_proj.bias", {q_dim}});
    out.push_back({p + "self_attn.k_proj.weight", {kv_dim, H}});
    if (c.qkv_bias) out.push_back({p + "self_attn.k_proj.bias", {kv_dim}});
    out.push_back({p + "self_attn.v_proj.weight", {kv_dim, H}});
    if (c.qkv_bias) out.push_back({p + "self_attn.v_proj.bias", {kv_dim}});
    out.push_back({p + "self_attn.o_proj.weight", {H, q_dim}});
    if (c.o_bias) out.push_back({p + "self_attn.o_proj.bias", {H}});
    if (c.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", {hd}});
      out.push_back({p + "self_attn.k_norm.weight", {hd}});
    }
    out.push_back({p + "post_attention_layernorm.weight", {H}});
    out.push_back({p + "mlp.gate_proj.weight", {F, H}});
    if (c.mlp_bias) out.push_back({p + "mlp.gate_proj.bias", {F}});
    out.push_back({p + "mlp.up_proj.weight", {F, H}});
    if (c.mlp_bias) out.push_back({p + "mlp.up_proj.bias", {F}});
    out.push_back({p + "mlp.down_proj.weight", {H, F}});
    if (c.mlp_bias) out.push_back({p + "mlp.down_proj.bias", {H}});
  }
  out.push_back({"model.norm.weight", {H}});
  if (with_lm_head) out.push_back({"lm_head.weight", {V, H}});
  return out;
}

}  // namespace tidal
