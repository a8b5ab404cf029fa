// ModelConfig: the fields of a Hugging Face config.json that the forward pass needs, validated.
// Architecture-specific traits (QKV bias, per-head q/k norm) come from the architecture registry
// (arch/architecture.h), so the forward code asks "does this model have X", never "is it Qwen".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/model/quant_config.h"

namespace tidal {

struct RopeScaling {
  std::string type;  // "" (none) or "llama3"
  double factor = 1.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "Qwen3ForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 4096;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // from the architecture (Qwen2) or `attention_bias`
  bool o_bias = false;    // `attention_bias` on architectures whose o_proj follows it (Llama, Qwen3)
  bool mlp_bias = false;  // `mlp_bias` (Llama)
  bool qk_norm = false;   // from the architecture (Qwen3)
  std::string torch_dtype;  // as written ("bfloat16", ...), informational
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  CheckpointQuantization quantization;  // quantization_config (pre-quantized checkpoints)

  // Reads and validates DIR/config.json (or a config.json path). Errors name the file and field.
  static Expected<ModelConfig> load(const std::string& path);
  static Expected<ModelConfig> parse(const std::string& json_text, const std::string& label);

  // RoPE inverse frequencies (head_dim / 2 entries), with the llama3 scaling applied.
  std::vector<float> rope_inv_freq() const;
};

}  // namespace tidal
