// Qwen3 (dense): the Llama decoder with per-head RMSNorm on q and k before RoPE, explicit head_dim.
#include "tidal/model/arch/architecture.h"

namespace tidal {
ArchitectureSpec architecture_qwen3() {
  return {
    .hf_class = "Qwen3ForCausalLM", .family = "qwen3", .qkv_bias = false, .qk_norm = true, .default_tie_embeddings = false};
}
}  // namespace tidal
