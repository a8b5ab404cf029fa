// Model: a loaded decoder-only transformer (Llama / Qwen2 / Qwen3 families) and its forward pass
// over a batch of sequences on the CPU.
//
// Weights stay memory-mapped in the dtype they are stored in (F32, F16 or BF16; zero-copy);
// small vectors (norms, biases) are converted to F32 at load. Activations are F32.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tidal/core/arena.h"
#include "tidal/core/thread_pool.h"
#include "tidal/kernels/ops.h"
#include "tidal/model/config.h"
#include "tidal/model/kv_cache.h"
#include "tidal/model/weight_store.h"

namespace tidal {

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // [n_embd]
  ops::Weight wq, wk, wv, wo;              // [n_heads*hd, n_embd], [n_kv*hd, n_embd] x2, [n_embd, n_heads*hd]
  std::vector<float> bq, bk, bv;           // q/k/v biases when config.qkv_bias
  std::vector<float> bo;                   // o_proj bias when config.o_bias
  std::vector<float> q_norm, k_norm;       // [head_dim] when config.qk_norm
  ops::Weight w_gate, w_up, w_down;        // [n_ff, n_embd] x2, [n_embd, n_ff]
  std::vector<float> b_gate, b_up, b_down; // when config.mlp_bias
};

struct ModelWeights {
  ops::Weight embed;              // [n_vocab, n_embd] (rows gathered, not multiplied)
  std::vector<LayerWeights> layers;
  std::vector<float> out_norm;    // [n_embd]
  ops::Weight lm_head;            // [n_vocab, n_embd]; the embedding when tied
};

// One sequence's share of a forward batch: its new tokens continue its cache at cache->n_tokens().
struct SequenceChunk {
  KvCache* cache = nullptr;
  std::span<const int32_t> tokens;
  bool all_logits = false;  // logits for every new token, or only for the last one
};

struct LoadOptions {
  int n_threads = 0;  // 0: all hardware threads
};

class Model {
 public:
  // Loads DIR (config.json + safetensors). Errors name the file, tensor or field at fault.
  static Expected<std::unique_ptr<Model>> load(const std::string& dir, const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  DType weight_dtype() const { return weights_.embed.dtype; }
  ThreadPool& pool() { return pool_; }

  // Runs every chunk's tokens through the model, appends their K/V to the chunk's cache, and
  // writes logits: for each chunk in order, one row per token (all_logits) or one row (last
  // token), each row n_vocab floats. Fails (nothing appended) if a token id is out of range or
  // a cache lacks room.
  Status forward(std::span<const SequenceChunk> batch, std::vector<float>* logits);

 private:
  Model(ModelConfig config, WeightStore store, int n_threads);
  Status bind_weights();

  ModelConfig config_;
  WeightStore store_;
  ModelWeights weights_;
  std::vector<float> inv_freq_;  // RoPE, [head_dim / 2]
  ThreadPool pool_;
};

}  // namespace tidal
