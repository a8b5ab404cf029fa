// How a quantized weight matrix is laid out in memory: the plain-data description shared by
// QuantizedTensor (core/quantized_tensor.h), the per-format codecs (core/quant_format.h) and the
// kernels (kernels/kernel_table.h). Fields only, no member functions, so ISA-specific kernel files
// can use it without ODR hazards.
//
// A matrix W has logical shape [n_out, n_in] (rows = output channels, as stored by PyTorch
// Linear layers). It is stored as three pieces:
//   data   [n_out, row_bytes]      element codes, row r at data + r * data_stride (bytes; the
//                                  canonical layout has data_stride == row_bytes);
//                                  8-bit formats: one code per byte; 4-bit formats: two codes per
//                                  byte, element 2i in the LOW nibble (a trailing odd element's
//                                  high nibble is 0).
//   scales [n_scale_rows, n_scale_cols]  one scale per block_rows x block_cols block of W, of type
//                                  scale_type (F32: 4 bytes, E4M3/E8M0: 1 byte); scale (rb, cb) is
//                                  entry rb * scale_stride + cb (canonical: scale_stride ==
//                                  n_scale_cols, rows contiguous).
//   global_scale                   one F32 (NVFP4's second-level scale; 1 when unused).
//   zero_points (optional)         int8, same grid as scales (integer formats only), canonical.
// The strides live in QuantView (storage, not format): checkpoints and quantize() use the canonical
// layout; the row-interleaved one (QuantizedTensor::interleave_rows) puts each row's scale codes
// right before its codes, so a decode product reads one stream instead of two.
// Dequantization (the reference every kernel is checked against):
//   W[r, c] = (decode(code[r, c]) - zero[rb, cb]) * decode(scale[rb, cb]) * global_scale,
//   rb = r / block_rows, cb = c / block_cols. Scales multiply (the DeepSeek-V3 / Qwen3-FP8
//   `weight_scale_inv` convention; a "per-tensor" block is [n_out, n_in], "per-channel" [1, n_in]).
#pragma once

#include <cstdint>

namespace tidal {

// Element encoding + scale scheme. Names as in quant_format_info().name.
enum class QuantFormat : uint8_t {
  kInt8,     // "int8": signed int8 codes in [-127, 127], F32 scales (symmetric)
  kFp8E4M3,  // "fp8_e4m3": FP8 E4M3 codes (core/fp8.h), F32 scales
  kFp8E5M2,  // "fp8_e5m2": FP8 E5M2 codes, F32 scales
  kNvFp4,    // "nvfp4": FP4 E2M1 codes (core/fp4.h), 1x16 blocks, E4M3 scales, F32 global scale
  kMxFp4,    // "mxfp4": FP4 E2M1 codes, 1x32 blocks, E8M0 scales (core/e8m0.h)
};
constexpr int kNumQuantFormats = 5;

enum class ScaleType : uint8_t { kF32, kFp8E4M3, kE8M0 };

enum class Packing : uint8_t {
  kOnePerByte,          // 8-bit codes
  kTwoPerByteLowFirst,  // 4-bit codes, element 2i in bits 0..3, element 2i+1 in bits 4..7
};

struct QuantLayout {
  QuantFormat format = QuantFormat::kInt8;
  int64_t n_out = 0, n_in = 0;  // logical shape [n_out, n_in]
  int bits = 8;                 // bits per element code
  Packing packing = Packing::kOnePerByte;
  int64_t row_bytes = 0;                       // ceil(n_in * bits / 8)
  int64_t block_rows = 1, block_cols = 1;      // clamped to [1, n_out] x [1, n_in]
  int64_t n_scale_rows = 0, n_scale_cols = 0;  // ceil(n_out / block_rows), ceil(n_in / block_cols)
  ScaleType scale_type = ScaleType::kF32;
  bool has_global_scale = false;
  bool has_zero_points = false;
};

// A quantized matrix as kernels see it: the layout plus pointers into storage owned elsewhere
// (a QuantizedTensor). All pointers are read-only; valid while the owner lives.
struct QuantView {
  QuantLayout layout;
  const uint8_t* data = nullptr;  // row r's codes at data + r * data_stride
  const void* scales = nullptr;   // scale (rb, cb) is entry rb * scale_stride + cb, of layout.scale_type
  int64_t data_stride = 0;        // bytes; >= layout.row_bytes
  int64_t scale_stride = 0;       // scale entries; >= layout.n_scale_cols
  float global_scale = 1.0f;
  const int8_t* zero_points = nullptr;  // [n_scale_rows, n_scale_cols] or nullptr
};

}  // namespace tidal
