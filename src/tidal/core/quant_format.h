// The per-format seam of quantization: one QuantFormatInfo per QuantFormat, each defined in its own
// file under core/quant_formats/ and listed in core/quant_formats/registry.cpp.
//
// Adding a format: add an enum value (core/quant_layout.h), one file quant_formats/<name>.cpp
// defining its QuantFormatInfo (encode + reference decode), and one line in registry.cpp. It then
// quantizes, dequantizes and runs through ops::quant_matmul's generic path (dequantize a tile, F32
// kernel); a fast kernel is an optional KernelTable entry (kernels/kernel_table.h).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "tidal/core/quant_layout.h"
#include "tidal/core/status.h"

namespace tidal {

enum class Granularity : uint8_t {
  kDefault,     // the format's own (int8/fp8: per channel; nvfp4: 1x16; mxfp4: 1x32)
  kPerTensor,   // one scale for the whole matrix
  kPerChannel,  // one scale per output row
  kBlock,       // block_rows x block_cols (e.g. 128 x 128 for DeepSeek-V3-style FP8)
};

struct QuantOptions {
  QuantFormat format = QuantFormat::kInt8;
  Granularity granularity = Granularity::kDefault;
  int64_t block_rows = 128, block_cols = 128;  // used by kBlock only
};

struct QuantFormatInfo {
  QuantFormat format;
  const char* name;  // "int8", "fp8_e4m3", "fp8_e5m2", "nvfp4", "mxfp4"
  int bits;          // per element code
  ScaleType scale_type;
  bool has_global_scale;
  bool supports_zero_points;
  Granularity default_granularity;
  int64_t fixed_block_cols;  // > 0: the only block shape is [1, fixed_block_cols] (FP4 formats)

  // Quantize w [n_out, n_in] (all finite) into storage sized by `layout`: data (row_bytes per row,
  // zero-filled on entry), scales (scale grid, zero-filled) and *global_scale. Never fails.
  void (*encode)(const float* w, const QuantLayout& layout, uint8_t* data, uint8_t* scales,
                 float* global_scale);
  // Reference dequantization of row r into out[n_in] (the formula in quant_layout.h).
  void (*decode_row)(const QuantView& v, int64_t r, float* out);
};

// The info of a format. Every enum value has one (checked by tests/core/quantized_tensor_test).
const QuantFormatInfo& quant_format_info(QuantFormat format);
// All registered formats, in enum order.
std::span<const QuantFormatInfo* const> quant_formats();
// Lookup by name ("int8", "fp8" = "fp8_e4m3", "fp8_e5m2", "nvfp4", "mxfp4"); nullopt if unknown.
std::optional<QuantFormat> quant_format_from_name(std::string_view name);

}  // namespace tidal
