// How a model's weight matrices are quantized: what the user asks for at load time
// (QuantizationOptions, the --quantization / --quantization-exclude flags) and what a checkpoint
// says about itself (CheckpointQuantization, config.json's "quantization_config").
//
// Layouts a checkpoint may be in (docs/quantization.md, "Quantized checkpoints"):
//   - quant_method "fp8" (Hugging Face fine-grained FP8, DeepSeek-V3 / Qwen3-FP8): X.weight is
//     F8_E4M3 (or F8_E5M2) [n_out, n_in], X.weight_scale_inv F32/BF16/F16
//     [ceil(n_out/br), ceil(n_in/bc)] for weight_block_size [br, bc] (one scalar without it);
//     W = code * scale_inv. Matrices stored as F32/F16/BF16 (e.g. lm_head) stay dense.
//   - quant_method "tidal" (written by `tidal quantize`): X.weight codes (I8, F8_E4M3, F8_E5M2, or
//     U8 [n_out, ceil(n_in/2)] for the FP4 formats), X.weight_scale (F32, F8_E4M3 for nvfp4, U8 =
//     E8M0 for mxfp4) on the grid of the recorded granularity, X.weight_scale_2 (F32 [], nvfp4's
//     global scale).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/core/quant_format.h"
#include "tidal/core/status.h"

namespace tidal {

// Matrices kept as stored unless the user says otherwise: vLLM's and the HF FP8 checkpoints'
// default (the embedding is a gather, not a product, and lm_head is the most sensitive matrix).
inline const std::vector<std::string> kDefaultQuantizationExclude = {"lm_head", "embed_tokens"};

// Quantize-on-load request.
struct QuantizationOptions {
  std::optional<QuantOptions> quantize;  // nullopt: weights as stored
  // A matrix whose tensor name contains one of these substrings is kept as stored ("lm_head"
  // matches the output projection, tied or not; "layers.0." the first layer; "mlp.down_proj"...).
  std::vector<std::string> exclude = kDefaultQuantizationExclude;
  // W8A8 (--quantization w8a8): int8 per-channel weights and activations quantized to int8 per
  // token before each product (int8 dot products); W4A8 (nvfp4:a8, mxfp4:a8): the same with FP4
  // weights. Otherwise activations stay F32 (W8A16 / W4A16 style).
  bool int8_activations = false;
  bool excludes(std::string_view tensor_name) const;
};

// Parses the CLI spelling: FORMAT[:GRANULARITY] with FORMAT one of int8, w8a8, fp8 (= fp8_e4m3),
// fp8_e5m2, nvfp4, mxfp4 (or "none"), GRANULARITY channel | tensor | block<R>x<C> (8-bit formats
// only; default channel) or a8 (nvfp4 / mxfp4 only: int8 activations); `exclude` is a comma list of substrings ("none": quantize everything;
// nullopt: the default list). Errors name the flag and the bad value.
Expected<QuantizationOptions> parse_quantization_flags(std::string_view format,
                                                       const std::optional<std::string>& exclude);

// "int8", "fp8_e4m3:block128x128", ... (what parse_quantization_flags accepts back).
std::string quant_options_name(const QuantOptions& o);
// The same, "w8a8" / "nvfp4:a8" / "mxfp4:a8" for int8 activations.
std::string quantization_name(const QuantOptions& o, bool int8_activations);

// config.json's quantization_config.
struct CheckpointQuantization {
  enum class Method : uint8_t { kNone, kFp8, kTidal };
  Method method = Method::kNone;
  std::string method_name;  // as written ("" when absent)
  // kTidal: the format and granularity every quantized matrix uses.
  QuantOptions options;
  // kFp8: weight_block_size [block_rows, block_cols]; absent: one scale per tensor.
  std::optional<std::pair<int64_t, int64_t>> fp8_block;
  bool int8_activations = false;  // kTidal: "activations": "int8" (W8A8)
  bool is_quantized() const { return method != Method::kNone; }
};

// Reads `quantization_config` (absent or null: kNone). Errors: unknown quant_method, malformed
// weight_block_size / format / granularity; each names `label` and the field.
Expected<CheckpointQuantization> parse_checkpoint_quantization(const nlohmann::json& config,
                                                               const std::string& label);
// The quantization_config object `tidal quantize` writes for `options` (and the excluded names).
nlohmann::json tidal_quantization_config(const QuantOptions& options, const std::vector<std::string>& exclude,
                                         bool int8_activations);

}  // namespace tidal
