#include "tidal/rl/torch_model.h"

#include <cmath>
#include <cstring>

#include "tidal/model/tensor_layout.h"
#include "tidal/model/weight_store.h"

namespace tidal::rl {

namespace {

using torch::indexing::Slice;

// F32 copy of a stored tensor (F32, F16 or BF16).
Status read_f32(const TensorRef& t, float* out) {
  const int64_t n = t.info->numel();
  switch (t.info->dtype) {
    case DType::kF32: std::memcpy(out, t.data, size_t(n) * sizeof(float)); return Status::ok();
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(s[i]);
      return Status::ok();
    }
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(s[i]);
      return Status::ok();
    }
    default:
      return unimplemented(*t.file + ": tensor '" + t.info->name + "' has dtype " + dtype_name(t.info->dtype) +
                           "; the trainer reads F32, F16 or BF16 weights");
  }
}

struct Layout {
  bool tied;
  std::vector<TensorShape> tensors;
};

Expected<Layout> layout_of(const ModelConfig& c, const WeightStore& store, const std::string& dir) {
  if (c.quantization.is_quantized()) {
    return unimplemented(dir + ": quantized checkpoint (" + c.quantization.method_name +
                         "); the trainer needs F32, F16 or BF16 weights");
  }
  // Tied when the config says so, or when the checkpoint has no lm_head (as the engine does).
  const bool tied = c.tie_word_embeddings || !store.contains("lm_head.weight");
  return Layout{tied, decoder_tensor_layout(c, !tied)};
}

// RMSNorm with ops::rms_norm's order of operations, (x * scale) * w. The engine sums the squares
// in double; F32 here changes the logprobs by less than the matmuls' summation order does (see
// docs/alignment.md) and a double copy of every activation costs ~20% of a small model's step.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  const torch::Tensor scale = (x.square().mean(-1, /*keepdim=*/true) + eps).rsqrt();
  return x * scale * w;
}

// Straight-through rounding to a 16-bit dtype: the value of round(x), the gradient of x.
torch::Tensor round_to(const torch::Tensor& x, DType d) {
  if (d == DType::kF32) return x;
  const torch::ScalarType st = d == DType::kBF16 ? torch::kBFloat16 : torch::kFloat16;
  return x + (x.detach().to(st).to(torch::kFloat32) - x.detach());
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor* b) {
  torch::Tensor y = torch::matmul(x, w.t());
  return b ? y + *b : y;
}

// Rotate-half RoPE on [B, T, heads, hd] with cos/sin [T, 1, hd/2] (as ops::rope).
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const torch::Tensor a = x.index({"...", Slice(0, half)});
  const torch::Tensor b = x.index({"...", Slice(half, torch::indexing::None)});
  return torch::cat({a * cos - b * sin, b * cos + a * sin}, -1);
}

}  // namespace

Expected<std::unique_ptr<TorchModel>> TorchModel::load(const std::string& dir) {
  TIDAL_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::load(dir));
  TIDAL_ASSIGN_OR_RETURN(WeightStore store, WeightStore::open(dir));
  TIDAL_ASSIGN_OR_RETURN(Layout layout, layout_of(config, store, dir));
  std::unique_ptr<TorchModel> m(new TorchModel());
  m->config_ = std::move(config);
  m->tied_ = layout.tied;
  std::map<std::string, size_t> index;
  for (const TensorShape& ts : layout.tensors) {
    TIDAL_ASSIGN_OR_RETURN(TensorRef ref, store.get(ts.name, ts.shape));
    torch::Tensor t = torch::empty(ts.shape, torch::kFloat32);
    TIDAL_RETURN_IF_ERROR(read_f32(ref, t.data_ptr<float>()));
    t.set_requires_grad(true);
    index[ts.name] = m->params_.size();
    m->names_.push_back(ts.name);
    m->params_.push_back(std::move(t));
  }
  const ModelConfig& c = m->config_;
  auto at = [&](const std::string& name) { auto it = index.find(name); return it == index.end() ? kNone : it->second; };
  m->embed_ = at("model.embed_tokens.weight");
  m->out_norm_ = at("model.norm.weight");
  m->lm_head_ = m->tied_ ? m->embed_ : at("lm_head.weight");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    m->layers_.push_back({at(p + "input_layernorm.weight"), at(p + "self_attn.q_proj.weight"),
                          at(p + "self_attn.q_proj.bias"), at(p + "self_attn.k_proj.weight"),
                          at(p + "self_attn.k_proj.bias"), at(p + "self_attn.v_proj.weight"),
                          at(p + "self_attn.v_proj.bias"), at(p + "self_attn.o_proj.weight"),
                          at(p + "self_attn.o_proj.bias"), at(p + "self_attn.q_norm.weight"),
                          at(p + "self_attn.k_norm.weight"), at(p + "post_attention_layernorm.weight"),
                          at(p + "mlp.gate_proj.weight"), at(p + "mlp.gate_proj.bias"),
                          at(p + "mlp.up_proj.weight"), at(p + "mlp.up_proj.bias"),
                          at(p + "mlp.down_proj.weight"), at(p + "mlp.down_proj.bias")});
  }
  m->inv_freq_ = c.rope_inv_freq();
  return m;
}

Status TorchModel::copy_weights_from(const std::string& dir) {
  TIDAL_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::load(dir));
  TIDAL_ASSIGN_OR_RETURN(WeightStore store, WeightStore::open(dir));
  TIDAL_ASSIGN_OR_RETURN(Layout layout, layout_of(config, store, dir));
  if (layout.tensors.size() != names_.size()) {
    return invalid_argument(dir + ": has " + std::to_string(layout.tensors.size()) + " weight tensors, the model " +
                            std::to_string(names_.size()) + " (different architecture or tied LM head)");
  }
  // Read everything first, so a failure leaves the parameters untouched.
  std::vector<torch::Tensor> fresh;
  for (size_t i = 0; i < names_.size(); ++i) {
    TIDAL_ASSIGN_OR_RETURN(TensorRef ref, store.get(names_[i], params_[i].sizes().vec()));
    torch::Tensor t = torch::empty(params_[i].sizes(), torch::kFloat32);
    TIDAL_RETURN_IF_ERROR(read_f32(ref, t.data_ptr<float>()));
    fresh.push_back(std::move(t));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < names_.size(); ++i) params_[i].copy_(fresh[i]);
  return Status::ok();
}

torch::Tensor TorchModel::rope_table(int64_t T) const {
  const int64_t half = config_.head_dim / 2;
  torch::Tensor table = torch::empty({2, T, 1, half}, torch::kFloat32);
  float* cs = table.data_ptr<float>();
  float* sn = cs + T * half;
  for (int64_t pos = 0; pos < T; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      // NOTE: as ops::rope: the angle in double from the F32 inv_freq, cos/sin rounded to F32.
      const double angle = double(pos) * double(inv_freq_[size_t(i)]);
      cs[pos * half + i] = float(std::cos(angle));
      sn[pos * half + i] = float(std::sin(angle));
    }
  }
  return table;
}

std::vector<torch::Tensor> TorchModel::forward_weights() const {
  std::vector<torch::Tensor> w(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) w[i] = round_to(params_[i], round_weights_);
  return w;
}

torch::Tensor TorchModel::hidden(const torch::Tensor& tokens, const std::vector<torch::Tensor>& w) const {
  const ModelConfig& c = config_;
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const int64_t H = c.hidden_size, nh = c.n_heads, nkv = c.n_kv_heads, hd = c.head_dim, g = nh / nkv;
  const double eps = double(float(c.rms_norm_eps));  // the engine's eps is an F32
  const float scale = float(1.0 / std::sqrt(double(hd)));
  auto p = [&](size_t i) -> const torch::Tensor& { return w[i]; };
  auto opt = [&](size_t i) -> const torch::Tensor* { return i == kNone ? nullptr : &w[i]; };

  const torch::Tensor table = rope_table(T);
  const torch::Tensor cos = table[0], sin = table[1];  // [T, 1, hd/2]
  const torch::Tensor masked = torch::ones({T, T}, torch::kBool).triu(1);  // key after query

  torch::Tensor x = p(embed_).index_select(0, tokens.reshape({-1})).view({B, T, H});
  for (const LayerIndex& L : layers_) {
    torch::Tensor h = rms_norm(x, p(L.attn_norm), eps);
    torch::Tensor q = linear(h, p(L.wq), opt(L.bq)).view({B, T, nh, hd});
    torch::Tensor k = linear(h, p(L.wk), opt(L.bk)).view({B, T, nkv, hd});
    torch::Tensor v = linear(h, p(L.wv), opt(L.bv)).view({B, T, nkv, hd});
    if (c.qk_norm) {
      q = rms_norm(q, p(L.q_norm), eps);
      k = rms_norm(k, p(L.k_norm), eps);
    }
    q = rope(q, cos, sin);
    k = round_to(rope(k, cos, sin), round_kv_);  // the engine's KV cache stores K after RoPE
    v = round_to(v, round_kv_);
    // Query head kvh * g + j reads kv head kvh: fold the group into the query rows.
    q = q.view({B, T, nkv, g, hd}).permute({0, 2, 3, 1, 4}).reshape({B, nkv, g * T, hd});
    k = k.permute({0, 2, 1, 3});  // [B, nkv, T, hd]
    v = v.permute({0, 2, 1, 3});
    torch::Tensor s = torch::matmul(q, k.transpose(-1, -2)) * scale;  // [B, nkv, g*T, T]
    s = s.view({B, nkv, g, T, T}).masked_fill(masked, -INFINITY).view({B, nkv, g * T, T});
    torch::Tensor o = torch::matmul(torch::softmax(s, -1), v);  // [B, nkv, g*T, hd]
    o = o.view({B, nkv, g, T, hd}).permute({0, 3, 1, 2, 4}).reshape({B, T, nh * hd});
    x = x + linear(o, p(L.wo), opt(L.bo));

    h = rms_norm(x, p(L.ffn_norm), eps);
    torch::Tensor gate = linear(h, p(L.wg), opt(L.bg));
    torch::Tensor up = linear(h, p(L.wu), opt(L.bu));
    x = x + linear(torch::silu(gate) * up, p(L.wd), opt(L.bd));
  }
  return x;
}

torch::Tensor TorchModel::logits(const torch::Tensor& tokens) const {
  const std::vector<torch::Tensor> w = forward_weights();
  const double eps = double(float(config_.rms_norm_eps));
  return linear(rms_norm(hidden(tokens, w), w[out_norm_], eps), w[lm_head_], nullptr);
}

torch::Tensor TorchModel::token_logprobs(const torch::Tensor& tokens, const torch::Tensor& scored) const {
  const int64_t T = tokens.size(1);
  const std::vector<torch::Tensor> w = forward_weights();
  const double eps = double(float(config_.rms_norm_eps));
  // Rows that predict a scored token: [N, H] -> final norm -> LM head [N, V].
  const torch::Tensor h = hidden(tokens, w).index({Slice(), Slice(0, T - 1)}).index({scored});
  const torch::Tensor lg = linear(rms_norm(h, w[out_norm_], eps), w[lm_head_], nullptr);
  const torch::Tensor next = tokens.index({Slice(), Slice(1, torch::indexing::None)}).index({scored});
  const torch::Tensor lp = lg.gather(-1, next.unsqueeze(-1)).squeeze(-1) - lg.logsumexp(-1);  // [N]
  return torch::zeros(scored.sizes(), lp.options()).index_put({scored}, lp);
}

torch::Tensor TorchModel::log_softmax(const torch::Tensor& tokens) const {
  const torch::Tensor lg = logits(tokens);
  return lg - lg.logsumexp(-1, /*keepdim=*/true);  // as token_logprobs: what training computes
}

}  // namespace tidal::rl
