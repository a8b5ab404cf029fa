#include "tidal/core/quantized_tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "tidal/core/dtype.h"

namespace tidal {

size_t scale_type_size(ScaleType t) { return t == ScaleType::kF32 ? 4 : 1; }

const char* scale_type_name(ScaleType t) {
  switch (t) {
    case ScaleType::kF32:
      return "F32";
    case ScaleType::kFp8E4M3:
      return "F8_E4M3";
    case ScaleType::kE8M0:
      return "F8_E8M0";
  }
  return "?";
}

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Status check_layout(const QuantLayout& l, std::string_view name) {
  const QuantFormatInfo& info = quant_format_info(l.format);
  const std::string at = std::string(name) + " (" + info.name + "): ";
  if (l.n_out <= 0 || l.n_in <= 0) return invalid_argument(at + "shape must be positive");
  if (l.bits != info.bits || l.scale_type != info.scale_type || l.has_global_scale != info.has_global_scale) {
    return invalid_argument(at + "layout does not match the format (bits, scale type or global scale)");
  }
  if (l.packing != (info.bits == 4 ? Packing::kTwoPerByteLowFirst : Packing::kOnePerByte)) {
    return invalid_argument(at + "packing does not match the element size");
  }
  if (l.row_bytes != ceil_div(l.n_in * l.bits, 8))
    return invalid_argument(at + "row_bytes does not match n_in");
  if (l.block_rows < 1 || l.block_rows > l.n_out || l.block_cols < 1 || l.block_cols > l.n_in) {
    return invalid_argument(at + "block shape [" + std::to_string(l.block_rows) + ", " +
                            std::to_string(l.block_cols) + "] must lie within the matrix shape [" +
                            std::to_string(l.n_out) + ", " + std::to_string(l.n_in) + "]");
  }
  if (l.block_cols != l.n_in && l.block_cols % 16 != 0) {
    return invalid_argument(at + "block_cols " + std::to_string(l.block_cols) +
                            " must equal n_in or be a multiple of 16");
  }
  if (info.fixed_block_cols > 0 &&
      (l.block_rows != 1 || l.block_cols != std::min(info.fixed_block_cols, l.n_in))) {
    return invalid_argument(at + "blocks must be [1, " + std::to_string(info.fixed_block_cols) + "]");
  }
  if (l.n_scale_rows != ceil_div(l.n_out, l.block_rows) || l.n_scale_cols != ceil_div(l.n_in, l.block_cols)) {
    return invalid_argument(at + "scale grid [" + std::to_string(l.n_scale_rows) + ", " +
                            std::to_string(l.n_scale_cols) + "] does not match blocks of [" +
                            std::to_string(l.block_rows) + ", " + std::to_string(l.block_cols) + "]");
  }
  if (l.has_zero_points && !info.supports_zero_points)
    return invalid_argument(at + "format has no zero points");
  return Status::ok();
}

}  // namespace

Expected<QuantLayout> QuantizedTensor::make_layout(const QuantOptions& o, int64_t n_out, int64_t n_in) {
  const QuantFormatInfo& info = quant_format_info(o.format);
  if (n_out <= 0 || n_in <= 0) {
    return invalid_argument(std::string(info.name) + ": shape [" + std::to_string(n_out) + ", " +
                            std::to_string(n_in) + "] must be positive");
  }
  QuantLayout l;
  l.format = o.format;
  l.n_out = n_out;
  l.n_in = n_in;
  l.bits = info.bits;
  l.packing = info.bits == 4 ? Packing::kTwoPerByteLowFirst : Packing::kOnePerByte;
  l.row_bytes = ceil_div(n_in * info.bits, 8);
  l.scale_type = info.scale_type;
  l.has_global_scale = info.has_global_scale;
  const Granularity g = o.granularity == Granularity::kDefault ? info.default_granularity : o.granularity;
  if (info.fixed_block_cols > 0) {
    const bool ok =
        o.granularity == Granularity::kDefault ||
        (o.granularity == Granularity::kBlock && o.block_rows == 1 && o.block_cols == info.fixed_block_cols);
    if (!ok) {
      return invalid_argument(std::string(info.name) + ": only [1, " + std::to_string(info.fixed_block_cols) +
                              "] blocks are defined for this format");
    }
    l.block_rows = 1;
    l.block_cols = std::min(info.fixed_block_cols, n_in);
  } else {
    switch (g) {
      case Granularity::kPerTensor:
        l.block_rows = n_out;
        l.block_cols = n_in;
        break;
      case Granularity::kDefault:
      case Granularity::kPerChannel:
        l.block_rows = 1;
        l.block_cols = n_in;
        break;
      case Granularity::kBlock:
        if (o.block_rows < 1 || o.block_cols < 1) {
          return invalid_argument(std::string(info.name) + ": block shape must be positive");
        }
        l.block_rows = std::min(o.block_rows, n_out);
        l.block_cols = std::min(o.block_cols, n_in);
        break;
    }
  }
  l.n_scale_rows = ceil_div(n_out, l.block_rows);
  l.n_scale_cols = ceil_div(n_in, l.block_cols);
  TIDAL_RETURN_IF_ERROR(check_layout(l, "weight"));
  return l;
}

Expected<QuantizedTensor> QuantizedTensor::wrap(const QuantLayout& layout, const void* data,
                                                size_t data_bytes, const void* scales, size_t scale_bytes,
                                                float global_scale, const int8_t* zero_points,
                                                size_t zero_point_bytes, std::string_view name) {
  TIDAL_RETURN_IF_ERROR(check_layout(layout, name));
  const std::string at = std::string(name) + " (" + quant_format_info(layout.format).name + "): ";
  const size_t want_data = size_t(layout.n_out * layout.row_bytes);
  const size_t n_scales = size_t(layout.n_scale_rows * layout.n_scale_cols);
  const size_t want_scales = n_scales * scale_type_size(layout.scale_type);
  if (data == nullptr || data_bytes != want_data) {
    return invalid_argument(at + "data has " + std::to_string(data_bytes) + " bytes, layout needs " +
                            std::to_string(want_data));
  }
  if (scales == nullptr || scale_bytes != want_scales) {
    return invalid_argument(at + "scales have " + std::to_string(scale_bytes) + " bytes, layout needs " +
                            std::to_string(want_scales) + " (" + std::to_string(layout.n_scale_rows) + " x " +
                            std::to_string(layout.n_scale_cols) + " " + scale_type_name(layout.scale_type) +
                            ")");
  }
  if (layout.has_zero_points != (zero_points != nullptr) ||
      (zero_points != nullptr && zero_point_bytes != n_scales)) {
    return invalid_argument(at + "zero points do not match the layout");
  }
  if (!std::isfinite(global_scale)) return invalid_argument(at + "global scale is not finite");
  QuantizedTensor t;
  t.layout_ = layout;
  t.data_ = static_cast<const uint8_t*>(data);
  t.scales_ = static_cast<const uint8_t*>(scales);
  t.zero_points_ = zero_points;
  t.data_stride_ = layout.row_bytes;
  t.scale_stride_ = layout.n_scale_cols;
  t.global_scale_ = layout.has_global_scale ? global_scale : 1.0f;
  return t;
}

size_t QuantizedTensor::data_bytes() const { return size_t(layout_.n_out * layout_.row_bytes); }
size_t QuantizedTensor::scale_bytes() const {
  return size_t(layout_.n_scale_rows * layout_.n_scale_cols) * scale_type_size(layout_.scale_type);
}
size_t QuantizedTensor::nbytes() const {
  return data_bytes() + scale_bytes() +
         (zero_points_ ? size_t(layout_.n_scale_rows * layout_.n_scale_cols) : 0);
}

void QuantizedTensor::copy_data(uint8_t* out) const {
  for (int64_t r = 0; r < layout_.n_out; ++r) {
    std::memcpy(out + r * layout_.row_bytes, data_ + r * data_stride_, size_t(layout_.row_bytes));
  }
}

void QuantizedTensor::copy_scales(uint8_t* out) const {
  const size_t row = size_t(layout_.n_scale_cols) * scale_type_size(layout_.scale_type);
  const size_t stride = size_t(scale_stride_) * scale_type_size(layout_.scale_type);
  for (int64_t r = 0; r < layout_.n_scale_rows; ++r) std::memcpy(out + r * row, scales_ + r * stride, row);
}

bool QuantizedTensor::can_interleave_rows(const QuantLayout& l) {
  return l.block_rows == 1 && scale_type_size(l.scale_type) == 1 && !l.has_zero_points;
}

QuantizedTensor interleave_rows(QuantizedTensor t) {
  const QuantLayout& l = t.layout_;
  if (t.empty() || !QuantizedTensor::can_interleave_rows(l) || !t.canonical()) return t;
  constexpr int64_t kAlign = 32;  // the AVX2 / AVX-512 kernels load codes 32 bytes at a time
  const int64_t scale_part = ceil_div(l.n_scale_cols, kAlign) * kAlign;
  const int64_t stride = ceil_div(scale_part + l.row_bytes, kAlign) * kAlign;
  QuantizedTensor u;
  u.layout_ = l;
  u.owned_data_.resize(size_t(l.n_out * stride));  // zero-filled: padding stays 0
  uint8_t* base = u.owned_data_.data();
  for (int64_t r = 0; r < l.n_out; ++r) {
    std::memcpy(base + r * stride, t.scales_ + r * l.n_scale_cols, size_t(l.n_scale_cols));
    std::memcpy(base + r * stride + scale_part, t.data_ + r * l.row_bytes, size_t(l.row_bytes));
  }
  u.scales_ = base;
  u.data_ = base + scale_part;
  u.data_stride_ = stride;
  u.scale_stride_ = stride;
  u.global_scale_ = t.global_scale_;
  return u;
}

QuantView QuantizedTensor::view() const {
  QuantView v;
  v.layout = layout_;
  v.data = data_;
  v.scales = scales_;
  v.data_stride = data_stride_;
  v.scale_stride = scale_stride_;
  v.global_scale = global_scale_;
  v.zero_points = zero_points_;
  return v;
}

void QuantizedTensor::dequantize_row(int64_t r, float* out) const {
  quant_format_info(layout_.format).decode_row(view(), r, out);
}

void QuantizedTensor::dequantize(float* out) const {
  for (int64_t r = 0; r < layout_.n_out; ++r) dequantize_row(r, out + r * layout_.n_in);
}

Expected<QuantizedTensor> quantize(const float* w, int64_t n_out, int64_t n_in, const QuantOptions& options) {
  TIDAL_ASSIGN_OR_RETURN(QuantLayout layout, QuantizedTensor::make_layout(options, n_out, n_in));
  const QuantFormatInfo& info = quant_format_info(options.format);
  for (int64_t i = 0; i < n_out * n_in; ++i) {
    if (!std::isfinite(w[i])) {
      return invalid_argument(std::string(info.name) + ": weight [" + std::to_string(i / n_in) + ", " +
                              std::to_string(i % n_in) + "] is not finite");
    }
  }
  QuantizedTensor t;
  t.layout_ = layout;
  t.owned_data_.resize(size_t(n_out * layout.row_bytes));  // zero-filled
  t.owned_scales_.resize(size_t(layout.n_scale_rows * layout.n_scale_cols) *
                         scale_type_size(layout.scale_type));
  float global = 1.0f;
  info.encode(w, layout, t.owned_data_.data(), t.owned_scales_.data(), &global);
  t.data_ = t.owned_data_.data();
  t.scales_ = t.owned_scales_.data();
  t.data_stride_ = layout.row_bytes;
  t.scale_stride_ = layout.n_scale_cols;
  t.global_scale_ = layout.has_global_scale ? global : 1.0f;
  return t;
}

Expected<QuantizedTensor> quantize(const Tensor& w, const QuantOptions& options) {
  if (w.ndim != 2) return invalid_argument("quantize: weight must be 2-D, got " + w.shape_string());
  if (w.dtype != DType::kF32 && w.dtype != DType::kF16 && w.dtype != DType::kBF16) {
    return unimplemented(std::string("quantize: weight dtype ") + dtype_name(w.dtype) +
                         " (want F32, F16 or BF16)");
  }
  const int64_t n_out = w.shape[0], n_in = w.shape[1];
  if (w.stride[1] != 1) return invalid_argument("quantize: weight rows must be contiguous");
  std::vector<float> f(size_t(n_out * n_in));
  for (int64_t r = 0; r < n_out; ++r) {
    const void* row = w.row(r);
    float* o = f.data() + r * n_in;
    for (int64_t c = 0; c < n_in; ++c) {
      switch (w.dtype) {
        case DType::kF32:
          o[c] = static_cast<const float*>(row)[c];
          break;
        case DType::kF16:
          o[c] = f16_to_f32(static_cast<const uint16_t*>(row)[c]);
          break;
        default:
          o[c] = bf16_to_f32(static_cast<const uint16_t*>(row)[c]);
          break;
      }
    }
  }
  return quantize(f.data(), n_out, n_in, options);
}

}  // namespace tidal
