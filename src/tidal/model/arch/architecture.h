// The model-architecture seam: each supported Hugging Face class registers one ArchitectureSpec
// (in arch/<family>.cpp). The spec says which optional pieces of the decoder its checkpoints have;
// the decoder (model/decoder.cpp) builds the forward pass from that, reading as the math.
// To add an architecture of the same decoder shape: add arch/<family>.cpp with a spec and list it
// in architecture.cpp. A new shape
// (e.g. MoE FFN) adds the piece to the decoder and a flag here.
#pragma once

#include <string>

namespace tidal {

struct ArchitectureSpec {
  const char* hf_class;   // config.json "architectures"[0], e.g. "Qwen3ForCausalLM"
  const char* family;     // short name for `tidal model init --arch`: "llama", "qwen2", "qwen3"
  bool qkv_bias;          // q/k/v projections carry a bias (Qwen2)
  bool qk_norm;           // per-head RMSNorm of q and k before RoPE (Qwen3)
  bool default_tie_embeddings;
};

const ArchitectureSpec* find_architecture(const std::string& hf_class);
const ArchitectureSpec* find_architecture_family(const std::string& family);
std::string supported_architectures();  // comma-separated hf_class names

// One function per arch/<family>.cpp; architecture.cpp lists them. (A static-initialiser
// registry would be dropped by the linker from a static library.)
ArchitectureSpec architecture_llama();
ArchitectureSpec architecture_qwen2();
ArchitectureSpec architecture_qwen3();

}  // namespace tidal
