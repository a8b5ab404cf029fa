// Llama 2/3.x: pre-norm decoder, rotate-half RoPE (optionally llama3-scaled), GQA, SwiGLU.
#include "tidal/model/arch/architecture.h"

namespace tidal {
ArchitectureSpec architecture_llama() {
  return {
    .hf_class = "LlamaForCausalLM", .family = "llama", .qkv_bias = false, .qk_norm = false, .default_tie_embeddings = false};
}
}  // namespace tidal
