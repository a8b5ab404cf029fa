// Qwen2 / Qwen2.5: the Llama decoder with a bias on the q, k and v projections.
#include "tidal/model/arch/architecture.h"

namespace tidal {
ArchitectureSpec architecture_qwen2() {
  return {
    .hf_class = "Qwen2ForCausalLM", .family = "qwen2", .qkv_bias = true, .qk_norm = false, .default_tie_embeddings = false};
}
}  // namespace tidal
