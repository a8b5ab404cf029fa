// Quantized weight matrices and checkpoints: quantizing a stored matrix on load, reading a matrix of
// a pre-quantized checkpoint (Hugging Face FP8 or Tidal's own layout, see quant_config.h) without
// copying it, and writing a quantized checkpoint (`tidal quantize`).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tidal/core/quantized_tensor.h"
#include "tidal/model/config.h"
#include "tidal/model/weight_store.h"

namespace tidal {

// A QuantizedTensor plus whatever storage it borrows that is not in the checkpoint mapping.
// Moving keeps every pointer valid (the storage does not move).
struct QuantMatrix {
  QuantizedTensor tensor;
  std::vector<float> converted_scales;  // BF16/F16 weight_scale_inv widened to F32
};

// Quantizes the dense (F32/F16/BF16) matrix `t` [n_out, n_in]. Errors name the tensor.
Expected<QuantMatrix> quantize_matrix(const TensorRef& t, const QuantOptions& options);

// Reads matrix `name` [n_out, n_in] of a checkpoint quantized as `q` (q.is_quantized()). Returns
// nullopt when the checkpoint stores that matrix dense (F32/F16/BF16; e.g. an lm_head it kept).
// The result borrows the store's mapping (zero-copy; the store must outlive it). Errors (one line,
// naming file, tensor and reason): codes of a dtype the method does not use, NaN/Inf codes, a
// missing scale tensor, a scale grid that does not match the weight's shape and block size,
// non-finite scales.
Expected<std::optional<QuantMatrix>> read_quantized_matrix(const WeightStore& store,
                                                           const CheckpointQuantization& q,
                                                           const std::string& name, int64_t n_out,
                                                           int64_t n_in);

// Writes a quantized checkpoint to out_dir in the "tidal" layout: every tensor of `store`, with
// each matrix named in `quantized` (tensor name -> its quantized form) replaced by its codes,
// X.weight_scale (and X.weight_scale_2 for nvfp4); config.json = `config_json` plus
// quantization_config (and tie_word_embeddings false when `quantized` holds an lm_head.weight the
// store lacks, i.e. a tied lm_head quantized apart from the embedding); other files of `src_dir`
// (tokenizer, generation config) copied. Loading out_dir gives bit-identical QuantizedTensors.
Status write_quantized_checkpoint(const std::string& src_dir, const WeightStore& store,
                                  const std::map<std::string, const QuantizedTensor*>& quantized,
                                  const QuantOptions& options, const std::vector<std::string>& exclude,
                                  bool int8_activations, const std::string& out_dir);

}  // namespace tidal
