// Writes a random-weight model as a Hugging Face folder: config.json, model.safetensors (or
// shards + model.safetensors.index.json), tokenizer.json, tokenizer_config.json and
// generation_config.json. Deterministic for a given spec (seed).
#pragma once

#include <cstdint>
#include <string>

#include "tidal/core/dtype.h"
#include "tidal/core/status.h"

namespace tidal {

struct RandomModelSpec {
  std::string family = "qwen3";  // llama | qwen2 | qwen3
  int64_t n_layers = 2;
  int64_t hidden = 256;
  int64_t intermediate = 512;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t head_dim = 0;  // 0: hidden / n_heads
  int64_t vocab = 4096;
  bool tie_embeddings = false;
  DType dtype = DType::kBF16;
  double rope_theta = 10000.0;
  bool llama3_rope_scaling = false;
  int64_t max_position = 4096;
  int n_shards = 1;  // > 1 writes model-0000i-of-0000n.safetensors + index
  uint64_t seed = 0;
};

// Creates `out_dir` (must not hold a config.json already unless overwrite) and writes the model.
Status write_random_model(const RandomModelSpec& spec, const std::string& out_dir, bool overwrite = false);

}  // namespace tidal
