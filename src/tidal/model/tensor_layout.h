// The dense tensors a decoder checkpoint holds for a ModelConfig, by Hugging Face name, in the
// order Hugging Face writes them (embedding, layers 0..n-1, final norm, lm_head). The trainer
// (src/tidal/rl) uses it to know which parameters a model has; the engine's loader
// (model.cpp, bind_weights) reads the same names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/model/config.h"

namespace tidal {

struct TensorShape {
  std::string name;
  std::vector<int64_t> shape;
};

// `with_lm_head`: false for a tied LM head (the checkpoint stores only model.embed_tokens.weight).
std::vector<TensorShape> decoder_tensor_layout(const ModelConfig& config, bool with_lm_head);

}  // namespace tidal
