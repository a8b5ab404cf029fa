// Model loading: config + weight store -> ModelWeights views (zero-copy for matrices).
#include "tidal/model/model.h"

#include <atomic>

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
                         "; weights must be F32, F16 or BF16 (or quantized codes described by config.json's "
                         "quantization_config)");
  }
  return Status::ok();
}

DType dtype_from_torch(const std::string& torch_dtype) {
  if (torch_dtype == "float32") return DType::kF32;
  if (torch_dtype == "float16") return DType::kF16;
  return DType::kBF16;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Model::Model(ModelConfig config, WeightStore store, int n_threads)
    : config_(std::move(config)), store_(std::move(store)), pool_(n_threads) {}

Expected<std::unique_ptr<Model>> Model::load(const std::string& dir, const LoadOptions& options) {
  auto config = ModelConfig::load(dir);
  if (!config) return config.status();
  if (config->quantization.is_quantized() && options.quantization.quantize) {
    return invalid_argument(
        dir + ": the checkpoint is already quantized (quant_method " + config->quantization.method_name +
        "); --quantization " +
        quantization_name(*options.quantization.quantize, options.quantization.int8_activations) +
        " cannot be applied on top");
  }
  auto store = WeightStore::open(dir);
  if (!store) return store.status();
  std::unique_ptr<Model> m(new Model(std::move(config).value(), std::move(store).value(), options.n_threads));
  m->quantization_options_ = options.quantization;
  TIDAL_RETURN_IF_ERROR(m->bind_weights(options.quantization));
  m->inv_freq_ = m->config_.rope_inv_freq();
  return m;
}

Status Model::bind_weights(const QuantizationOptions& qopt) {
  const ModelConfig& c = config_;
  const CheckpointQuantization& ckpt = c.quantization;
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  bool have_dense = false;

  // Matrices to quantize on load, done together at the end (in parallel).
  struct Pending {
    std::string name;
    TensorRef source;
    std::vector<ops::LinearWeight*> targets;
  };
  std::vector<Pending> pending;
  std::vector<std::string> matrix_names;

  // Quantized matrices are kept row-interleaved where the kernels run faster so (FP4: each row's
  // scale codes beside its codes, one stream per row; ops::keep_rows_interleaved). For a checkpoint
  // that means a copy instead of the memory map.
  const ops::Activations acts = (qopt.quantize ? qopt.int8_activations : ckpt.int8_activations)
                                    ? ops::Activations::kInt8
                                    : ops::Activations::kF32;
  auto for_kernels = [acts](QuantizedTensor t) {
    return ops::keep_rows_interleaved(t.layout(), acts) ? interleave_rows(std::move(t)) : std::move(t);
  };
  auto adopt = [&](const std::string& name, QuantMatrix qm, ops::LinearWeight* w) {
    qm.tensor = for_kernels(std::move(qm.tensor));
    quant_storage_.push_back(std::make_unique<QuantMatrix>(std::move(qm)));
    w->quant = &quant_storage_.back()->tensor;
    quantized_[name] = w->quant;
  };
  auto matrix = [&](const std::string& name, int64_t n_out, int64_t n_in, ops::LinearWeight* w) -> Status {
    matrix_names.push_back(name);
    *w = ops::LinearWeight{};
    if (ckpt.is_quantized()) {
      TIDAL_ASSIGN_OR_RETURN(std::optional<QuantMatrix> qm,
                             read_quantized_matrix(store_, ckpt, name, n_out, n_in));
      if (qm) {
        adopt(name, std::move(*qm), w);
        return Status::ok();
      }
    }
    auto t = store_.get(name, {n_out, n_in});
    if (!t) return t.status();
    TIDAL_RETURN_IF_ERROR(check_float(*t));
    w->dense = ops::Weight{t->data, t->info->dtype, n_out, n_in};
    if (!have_dense) dense_dtype_ = t->info->dtype;
    have_dense = true;
    if (qopt.quantize && !qopt.excludes(name)) pending.push_back({name, *t, {w}});
    return Status::ok();
  };
  auto vec = [&](const std::string& name, int64_t n, std::vector<float>* out) -> Status {
    auto t = store_.get(name, {n});
    if (!t) return t.status();
    TIDAL_RETURN_IF_ERROR(check_float(*t));
    *out = to_f32(*t);
    return Status::ok();
  };
  if (ckpt.is_quantized()) dense_dtype_ = dtype_from_torch(c.torch_dtype);

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
  const std::string kLmHead = "lm_head.weight";
  if (c.tie_word_embeddings || !store_.contains(kLmHead)) {
    matrix_names.push_back(kLmHead);
    weights_.lm_head = weights_.embed;
    const bool embed_pending = !pending.empty() && pending.front().name == "model.embed_tokens.weight";
    if (qopt.quantize) {
      const bool want = !qopt.excludes(kLmHead);
      if (want && embed_pending) {
        pending.front().targets.push_back(&weights_.lm_head);  // one quantized tensor for both roles
      } else if (want && !weights_.embed.quant) {
        // The embedding stays as stored; lm_head gets its own quantized copy of the same matrix.
        auto t = store_.get("model.embed_tokens.weight", {V, H});
        if (!t) return t.status();
        pending.push_back({kLmHead, *t, {&weights_.lm_head}});
      }
      // !want: lm_head uses the embedding's dense view (kept whatever the embedding gets).
    }
  } else {
    TIDAL_RETURN_IF_ERROR(matrix(kLmHead, V, H, &weights_.lm_head));
  }

  if (qopt.quantize) {
    for (const std::string& e : qopt.exclude) {
      bool hit = false;
      for (const std::string& n : matrix_names) hit = hit || n.find(e) != std::string::npos;
      if (!hit) {
        return invalid_argument("--quantization-exclude: '" + e + "' matches no weight matrix of " +
                                c.architecture);
      }
    }
    // NOTE: matrices are independent; each thread takes the next one (dynamic, biggest first would
    // balance better but load time is dominated by the largest few anyway).
    std::vector<std::optional<Expected<QuantMatrix>>> results(pending.size());
    std::atomic<size_t> next{0};
    pool_.run([&](int, int) {
      for (size_t i = next++; i < pending.size(); i = next++) {
        results[i] = quantize_matrix(pending[i].source, *qopt.quantize);
        if (*results[i]) (*results[i])->tensor = for_kernels(std::move((*results[i])->tensor));
      }
    });
    for (size_t i = 0; i < pending.size(); ++i) {
      if (!*results[i]) return results[i]->status();
      quant_storage_.push_back(std::make_unique<QuantMatrix>(std::move(*results[i]).value()));
      for (ops::LinearWeight* w : pending[i].targets) w->quant = &quant_storage_.back()->tensor;
      quantized_[pending[i].name] = &quant_storage_.back()->tensor;
    }
    if (qopt.int8_activations) activations_ = ops::Activations::kInt8;
    quantization_desc_ = quantization_name(*qopt.quantize, qopt.int8_activations) + " on load (" +
                         std::to_string(quantized_.size()) + " matrices; kept as stored: " +
                         (qopt.exclude.empty() ? "none" : join(qopt.exclude)) + ")";
  } else if (ckpt.is_quantized()) {
    std::string how = ckpt.method_name;
    if (ckpt.method == CheckpointQuantization::Method::kTidal) {
      how.append(" ").append(quantization_name(ckpt.options, ckpt.int8_activations));
    }
    if (ckpt.int8_activations) activations_ = ops::Activations::kInt8;
    if (ckpt.fp8_block) {
      how.append(" block ").append(std::to_string(ckpt.fp8_block->first)).append("x");
      how.append(std::to_string(ckpt.fp8_block->second));
    }
    quantization_desc_ = how + " checkpoint (" + std::to_string(quantized_.size()) + " quantized matrices)";
  }
  return Status::ok();
}

uint64_t Model::matrix_bytes_per_token() const {
  auto bytes = [](const ops::LinearWeight& w) -> uint64_t {
    return w.quant ? w.quant->nbytes() : uint64_t(w.dense.n_out * w.dense.n_in) * dtype_size(w.dense.dtype);
  };
  uint64_t n = bytes(weights_.lm_head);
  for (const LayerWeights& L : weights_.layers) {
    for (const ops::LinearWeight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
      n += bytes(*w);
  }
  return n;
}

}  // namespace tidal

namespace tidal {

DType Model::default_kv_dtype() const {
  const DType w = dense_dtype_;
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
  Status st = bind_weights(quantization_options_);
  if (!st.is_ok()) {
    store_ = std::move(old_store);
    weights_ = std::move(old_weights);
  }
  return st;
}

}  // namespace tidal
