// QuantizedTensor: one quantized weight matrix [n_out, n_in] = packed codes + scales (+ global
// scale, + zero points) + layout metadata (core/quant_layout.h), in any QuantFormat.
//
// Storage: either owned (quantize() allocates 64-byte-aligned buffers) or borrowed (wrap() takes
// pointers to memory owned elsewhere, e.g. a memory-mapped checkpoint, which must outlive the
// tensor). Move-only; moving keeps the storage where it is, so views taken before a move stay
// valid. Immutable after construction; const methods are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tidal/core/arena.h"
#include "tidal/core/quant_format.h"
#include "tidal/core/quant_layout.h"
#include "tidal/core/status.h"
#include "tidal/core/tensor.h"

namespace tidal {

class QuantizedTensor {
 public:
  QuantizedTensor() = default;
  QuantizedTensor(QuantizedTensor&&) = default;
  QuantizedTensor& operator=(QuantizedTensor&&) = default;
  QuantizedTensor(const QuantizedTensor&) = delete;
  QuantizedTensor& operator=(const QuantizedTensor&) = delete;

  // The layout for quantizing a [n_out, n_in] matrix with `options`. Errors (kInvalidArgument):
  // non-positive shape, a granularity the format does not allow (FP4 formats have fixed 1x16 /
  // 1x32 blocks), a block shape < 1, or block_cols that is neither >= n_in nor a multiple of 16
  // (the kernels step through a block 16 codes at a time).
  static Expected<QuantLayout> make_layout(const QuantOptions& options, int64_t n_out, int64_t n_in);

  // Borrow existing storage. `layout` must be valid for its format (as make_layout would build it,
  // or with other block shapes obeying the same rules); sizes are in bytes and must match the
  // layout exactly; zero_points only if layout.has_zero_points. `name` is used in error messages
  // (e.g. the checkpoint tensor name).
  static Expected<QuantizedTensor> wrap(const QuantLayout& layout, const void* data, size_t data_bytes,
                                        const void* scales, size_t scale_bytes, float global_scale = 1.0f,
                                        const int8_t* zero_points = nullptr, size_t zero_point_bytes = 0,
                                        std::string_view name = "weight");

  const QuantLayout& layout() const { return layout_; }
  QuantFormat format() const { return layout_.format; }
  int64_t n_out() const { return layout_.n_out; }
  int64_t n_in() const { return layout_.n_in; }
  // Row r's codes start at data() + r * data_stride(); scale (rb, cb) is entry
  // rb * scale_stride() + cb of scales(). Canonical storage (quantize(), wrap()): rows contiguous,
  // data_stride() == row_bytes, scale_stride() == n_scale_cols.
  const uint8_t* data() const { return data_; }
  const uint8_t* scales() const { return scales_; }
  int64_t data_stride() const { return data_stride_; }
  int64_t scale_stride() const { return scale_stride_; }
  bool canonical() const {
    return data_stride_ == layout_.row_bytes && scale_stride_ == layout_.n_scale_cols;
  }
  float global_scale() const { return global_scale_; }
  const int8_t* zero_points() const { return zero_points_; }  // nullptr when none
  bool owns_storage() const { return owned_data_.size() != 0; }
  bool empty() const { return data_ == nullptr; }
  size_t data_bytes() const;   // n_out * row_bytes (the codes, without any row padding)
  size_t scale_bytes() const;  // n_scale_rows * n_scale_cols scales
  size_t nbytes() const;       // everything a GEMV reads: data + scales + zero points

  // The codes / scales in the canonical layout ([n_out, row_bytes], [n_scale_rows, n_scale_cols]),
  // whatever the storage: out must hold data_bytes() / scale_bytes().
  void copy_data(uint8_t* out) const;
  void copy_scales(uint8_t* out) const;

  // Whether interleave_rows() applies: one scale row per weight row (block_rows == 1), one-byte
  // scales (NVFP4, MXFP4) and no zero points.
  static bool can_interleave_rows(const QuantLayout& layout);

  // The plain view kernels take.
  QuantView view() const;

  // Reference dequantization (slow, exact per the formula in quant_layout.h).
  void dequantize_row(int64_t r, float* out) const;  // out[n_in]
  void dequantize(float* out) const;                 // out[n_out, n_in]

 private:
  friend Expected<QuantizedTensor> quantize(const float*, int64_t, int64_t, const QuantOptions&);
  friend QuantizedTensor interleave_rows(QuantizedTensor t);
  QuantLayout layout_;
  const uint8_t* data_ = nullptr;
  const uint8_t* scales_ = nullptr;
  const int8_t* zero_points_ = nullptr;
  int64_t data_stride_ = 0, scale_stride_ = 0;
  float global_scale_ = 1.0f;
  AlignedBuffer<uint8_t> owned_data_, owned_scales_;  // interleaved storage: all in owned_data_
};

// The same matrix, bit for bit, in the row-interleaved layout: row r holds its scale codes (padded
// to 32 bytes), then its codes, rows 32-byte aligned (data_stride() = scale_stride() = the row's
// bytes). A decode GEMV then streams one array instead of two, ~16% faster for the FP4 W4A8
// kernels on Zen 5 (docs/quantization.md). Owned storage (a copy). Returns t itself when
// !can_interleave_rows(t.layout()) or t is already interleaved.
QuantizedTensor interleave_rows(QuantizedTensor t);

// Quantize w [n_out, n_in] (row-major F32). Errors: a bad layout (see make_layout) or a non-finite
// weight (kInvalidArgument naming its [row, col]).
Expected<QuantizedTensor> quantize(const float* w, int64_t n_out, int64_t n_in, const QuantOptions& options);
// Same for a 2-D tensor of dtype F32, F16 or BF16 (any row stride); other dtypes -> kUnimplemented.
Expected<QuantizedTensor> quantize(const Tensor& w, const QuantOptions& options);

// Bytes of one scale of a type (F32: 4, else 1) and its value.
size_t scale_type_size(ScaleType t);
const char* scale_type_name(ScaleType t);  // "F32", "F8_E4M3", "F8_E8M0"

}  // namespace tidal
