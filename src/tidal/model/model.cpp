// Model loading: config + weight store -> ModelWeights views (zero-copy for matrices).
#include "tidal/model/model.h"

namespace tidal {

namespace {

std::vector<float> to_f32(const TensorRef& t) {
  const int64_t n = t.info->numel();
  std::vector<float> out(static_cast<size_t>(n));
  switch (t.info->dtype) {
    case DType::kF32: {
      const float* p = static_cast<const float*>(t.data);
      for (int64_t i = 0; i < n; ++i) out[size_t(i)] = p[i];
      break;
    }
    case DType::kF16: {
      const uint16_t* p = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) out[size_t(i)] = f16_to_f32(p[i]);
      break;
    }
    case DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < n; ++i) out[size_t(i)] = bf16_to_f32(p[i]);
      break;
    }
    default: break;  // rejected by check_float() before we get here
  }
  return out;
}

Status check_float(const TensorRef& t) {
  const DType d = t.info->dtype;
  if (d != DType::kF32 && d != DType::kF16 && d != DType::kBF16) {
    return unimplemented(*t.file + ": tensor '" + t.info->name + "' has dtype " + dtype_name(d) +
                         "; weights must be F32, F16 or BF16");
  }
  return Status::ok();
}

}  // namespace

Model::Model(ModelConfig config, WeightStore store, int n_threads)
    : config_(std::move(config)), store_(std::move(store)), pool_(n_threads) {}

Expected<std::unique_ptr<Model>> Model::load(const std::string& dir, const LoadOptions& options) {
  auto config = ModelConfig::load(dir);
  if (!config) return config.status();
  auto store = WeightStore::open(dir);
  if (!store) return store.status();
  std::unique_ptr<Model> m(new Model(std::move(config).value(), std::move(store).value(), options.n_threads));
  TIDAL_RETURN_IF_ERROR(m->bind_weights());
  m->inv_freq_ = m->config_.rope_inv_freq();
  return m;
}

Status Model::bind_weights() {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;

  auto matrix = [&](const std::string& name, int64_t n_out, int64_t n_in, ops::Weight* w) -> Status {
    auto t = store_.get(name, {n_out, n_in});
    if (!t) return t.status();
    TIDAL_RETURN_IF_ERROR(check_float(*t));
    *w = ops::Weight{t->data, t->info->dtype, n_out, n_in};
    return Status::ok();
  };
  auto vec = [&](const std::string& name, int64_t n, std::vector<float>* out) -> Status {
    auto t = store_.get(name, {n});
    if (!t) return t.status();
    TIDAL_RETURN_IF_ERROR(check_float(*t));
    *out = to_f32(*t);
    return Status::ok();
  };

  TIDAL_RETURN_IF_ERROR(matrix("model.embed_tokens.weight", V, H, &weights_.embed));
  weights_.layers.resize(size_t(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = weights_.layers[size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    TIDAL_RETURN_IF_ERROR(vec(p + "input_layernorm.weight", H, &L.attn_norm));
    TIDAL_RETURN_IF_ERROR(matrix(p + "self_attn.q_proj.weight", q_dim, H, &L.wq));
    TIDAL_RETURN_IF_ERROR(matrix(p + "self_attn.k_proj.weight", kv_dim, H, &L.wk));
    TIDAL_RETURN_IF_ERROR(matrix(p + "self_attn.v_proj.weight", kv_dim, H, &L.wv));
    TIDAL_RETURN_IF_ERROR(matrix(p + "self_attn.o_proj.weight", H, q_dim, &L.wo));
    if (c.o_bias) TIDAL_RETURN_IF_ERROR(vec(p + "self_attn.o_proj.bias", H, &L.bo));
    if (c.qkv_bias) {
      TIDAL_RETURN_IF_ERROR(vec(p + "self_attn.q_proj.bias", q_dim, &L.bq));
      TIDAL_RETURN_IF_ERROR(vec(p + "self_attn.k_proj.bias", kv_dim, &L.bk));
      TIDAL_RETURN_IF_ERROR(vec(p + "self_attn.v_proj.bias", kv_dim, &L.bv));
    }
    if (c.qk_norm) {
      TIDAL_RETURN_IF_ERROR(vec(p + "self_attn.q_norm.weight", hd, &L.q_norm));
      TIDAL_RETURN_IF_ERROR(vec(p + "self_attn.k_norm.weight", hd, &L.k_norm));
    }
    TIDAL_RETURN_IF_ERROR(vec(p + "post_attention_layernorm.weight", H, &L.ffn_norm));
    TIDAL_RETURN_IF_ERROR(matrix(p + "mlp.gate_proj.weight", F, H, &L.w_gate));
    TIDAL_RETURN_IF_ERROR(matrix(p + "mlp.up_proj.weight", F, H, &L.w_up));
    TIDAL_RETURN_IF_ERROR(matrix(p + "mlp.down_proj.weight", H, F, &L.w_down));
    if (c.mlp_bias) {
      TIDAL_RETURN_IF_ERROR(vec(p + "mlp.gate_proj.bias", F, &L.b_gate));
      TIDAL_RETURN_IF_ERROR(vec(p + "mlp.up_proj.bias", F, &L.b_up));
      TIDAL_RETURN_IF_ERROR(vec(p + "mlp.down_proj.bias", H, &L.b_down));
    }
  }
  TIDAL_RETURN_IF_ERROR(vec("model.norm.weight", H, &weights_.out_norm));
  // Tied when the config says so, or when the checkpoint simply has no lm_head (as HF does).
  if (c.tie_word_embeddings || !store_.contains("lm_head.weight")) {
    weights_.lm_head = weights_.embed;
  } else {
    TIDAL_RETURN_IF_ERROR(matrix("lm_head.weight", V, H, &weights_.lm_head));
  }
  return Status::ok();
}

}  // namespace tidal

namespace tidal {

DType Model::default_kv_dtype() const {
  const DType w = weights_.embed.dtype;
  return (w == DType::kF16 || w == DType::kBF16) ? w : DType::kF32;
}

}  // namespace tidal

namespace tidal {

Status Model::reload_weights(const std::string& path) {
  auto store = WeightStore::open(path);
  if (!store) return store.status();
  WeightStore old_store = std::move(store_);
  ModelWeights old_weights = std::move(weights_);
  store_ = std::move(store).value();
  weights_ = ModelWeights{};
  Status st = bind_weights();
  if (!st.is_ok()) {
    store_ = std::move(old_store);
    weights_ = std::move(old_weights);
  }
  return st;
}

}  // namespace tidal
