// Model: a loaded decoder-only transformer (Llama / Qwen2 / Qwen3 families) and its forward pass
// over a batch of sequences on the CPU.
//
// Weights stay memory-mapped in the dtype they are stored in (F32, F16 or BF16; zero-copy);
// small vectors (norms, biases) are converted to F32 at load. Activations are F32.
// Weight matrices may instead be quantized (ops::LinearWeight holds either kind): on load
// (LoadOptions::quantization) or as stored by a pre-quantized checkpoint (quant_config.h), whose
// codes and scales stay memory-mapped too.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tidal/core/arena.h"
#include "tidal/core/thread_pool.h"
#include "tidal/kernels/ops.h"
#include "tidal/kernels/quant_ops.h"
#include "tidal/model/config.h"
#include "tidal/model/kv_cache.h"
#include "tidal/model/quant_checkpoint.h"
#include "tidal/model/quant_config.h"
#include "tidal/model/weight_store.h"

namespace tidal {

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [n_embd]
  ops::LinearWeight wq, wk, wv, wo;        // [n_heads*hd, n_embd], [n_kv*hd, n_embd] x2, [n_embd, n_heads*hd]
  std::vector<float> bq, bk, bv;           // q/k/v biases when config.qkv_bias
  std::vector<float> bo;                   // o_proj bias when config.o_bias
  std::vector<float> q_norm, k_norm;       // [head_dim] when config.qk_norm
  ops::LinearWeight w_gate, w_up, w_down;  // [n_ff, n_embd] x2, [n_embd, n_ff]
  std::vector<float> b_gate, b_up, b_down; // when config.mlp_bias
};

struct ModelWeights {
  ops::LinearWeight embed;        // [n_vocab, n_embd] (rows gathered, not multiplied)
  std::vector<LayerWeights> layers;
  std::vector<float> out_norm;    // [n_embd]
  ops::LinearWeight lm_head;      // [n_vocab, n_embd]; the embedding when tied
};

// One sequence's share of a forward batch: its new tokens take positions kv.n_past, ... and their
// K/V are written into kv's blocks at those positions.
struct SequenceChunk {
  KvSlots kv;
  std::span<const int32_t> tokens;
  bool all_logits = false;  // logits for every new token, or only for the last one
};

struct LoadOptions {
  int n_threads = 0;  // 0: all hardware threads
  // Quantize weight matrices on load (all but the excluded ones). Combining it with a checkpoint
  // that is already quantized is an error.
  QuantizationOptions quantization;
};

class Model {
 public:
  // Loads DIR (config.json + safetensors). Errors name the file, tensor or field at fault.
  static Expected<std::unique_ptr<Model>> load(const std::string& dir, const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  // The dtype of the dense (unquantized) weights: as stored, or the checkpoint's torch_dtype.
  DType weight_dtype() const { return dense_dtype_; }
  // "none", "int8 on load (kept: lm_head, embed_tokens)", "fp8 checkpoint (block 128x128)", ...
  const std::string& quantization() const { return quantization_desc_; }
  ops::Activations activations() const { return activations_; }  // kInt8: W8A8 / W4A8
  // The quantized matrices by tensor name ("lm_head.weight" for a tied lm_head quantized apart
  // from its embedding). Valid while the Model lives.
  const std::map<std::string, const QuantizedTensor*>& quantized_matrices() const { return quantized_; }
  // Bytes of weight matrices one token's forward pass reads (quantized: codes + scales).
  uint64_t matrix_bytes_per_token() const;
  const WeightStore& store() const { return store_; }
  ThreadPool& pool() { return pool_; }

  // Runs every chunk's tokens through the model, writes their K/V into the chunk's blocks, and
  // writes logits: for each chunk in order, one row per token (all_logits) or one row (last
  // token), each row n_vocab floats. Fails before touching any storage if a token id is out of
  // range or a block table is too short. Not reentrant: one forward at a time per Model (it
  // reuses its activation buffers).
  Status forward(std::span<const SequenceChunk> batch, std::vector<float>* logits);
  // The KV dtype matching the weights: F32 weights -> F32, F16 -> F16, BF16 -> BF16.
  DType default_kv_dtype() const;
  // Replaces every weight with the tensors at `path` (a model folder or one safetensors file,
  // e.g. /dev/shm/<segment>); shapes must match the config. On failure nothing changes.
  // Not concurrent with forward().
  Status reload_weights(const std::string& path);

 private:
  Model(ModelConfig config, WeightStore store, int n_threads);
  Status bind_weights(const QuantizationOptions& quantization);

  ModelConfig config_;
  WeightStore store_;
  ModelWeights weights_;
  DType dense_dtype_ = DType::kBF16;
  std::string quantization_desc_ = "none";
  QuantizationOptions quantization_options_;  // kept for reload_weights()
  std::vector<std::unique_ptr<QuantMatrix>> quant_storage_;  // owns what quantized_ points to
  std::map<std::string, const QuantizedTensor*> quantized_;
  ops::Activations activations_ = ops::Activations::kF32;  // kInt8 for W8A8
  std::vector<float> inv_freq_;  // RoPE, [head_dim / 2]
  ThreadPool pool_;
  // Activations, grown on demand and reused across calls (no allocation per decode step).
  std::vector<float> x_, h_, q_, k_, v_, attn_, proj_, gate_, up_, scores_, sel_, rope_cs_;
};

}  // namespace tidal
