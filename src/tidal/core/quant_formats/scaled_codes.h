// Shared by the format files: block iteration and the encode/decode loops of formats whose codes
// are scaled by one scale per block (and an optional global scale). Internal to quant_formats/.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tidal/core/quant_layout.h"

namespace tidal::quant_detail {

// Largest |w| in block (rb, cb).
inline float block_amax(const float* w, const QuantLayout& l, int64_t rb, int64_t cb) {
  const int64_t r0 = rb * l.block_rows, r1 = std::min(l.n_out, r0 + l.block_rows);
  const int64_t c0 = cb * l.block_cols, c1 = std::min(l.n_in, c0 + l.block_cols);
  float amax = 0.0f;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * l.n_in + c]));
  return amax;
}

inline float load_f32_scale(const void* scales, int64_t i) {
  float s;
  std::memcpy(&s, static_cast<const uint8_t*>(scales) + i * 4, 4);
  return s;
}
inline void store_f32_scale(uint8_t* scales, int64_t i, float s) { std::memcpy(scales + i * 4, &s, 4); }

// Write code q (already masked to `bits`) for element (r, c).
inline void put_code(const QuantLayout& l, uint8_t* data, int64_t r, int64_t c, uint8_t q) {
  uint8_t* row = data + r * l.row_bytes;
  if (l.bits == 8) {
    row[c] = q;
  } else {
    row[c >> 1] = uint8_t(row[c >> 1] | ((c & 1) ? (q << 4) : (q & 0xf)));
  }
}
inline uint8_t get_code(const QuantLayout& l, const uint8_t* data, int64_t r, int64_t c) {
  const uint8_t* row = data + r * l.row_bytes;
  if (l.bits == 8) return row[c];
  return (c & 1) ? uint8_t(row[c >> 1] >> 4) : uint8_t(row[c >> 1] & 0xf);
}

// Encode every element of block (rb, cb) as code(w / scale) (0 when scale == 0).
template <class CodeFn>
void encode_block(const float* w, const QuantLayout& l, uint8_t* data, int64_t rb, int64_t cb, float scale,
                  CodeFn code) {
  const int64_t r0 = rb * l.block_rows, r1 = std::min(l.n_out, r0 + l.block_rows);
  const int64_t c0 = cb * l.block_cols, c1 = std::min(l.n_in, c0 + l.block_cols);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c = c0; c < c1; ++c)
      put_code(l, data, r, c, code(scale == 0.0f ? 0.0f : w[r * l.n_in + c] / scale));
}

// out[c] = (value(code) - zero) * scale(rb, cb) * global, for one row.
template <class ValueFn, class ScaleFn>
void decode_row(const QuantView& v, int64_t r, float* out, ValueFn value, ScaleFn scale_at) {
  const QuantLayout& l = v.layout;
  const int64_t rb = r / l.block_rows;
  for (int64_t c = 0; c < l.n_in; ++c) {
    const int64_t i = rb * l.n_scale_cols + c / l.block_cols;
    float q = value(get_code(l, v.data, r, c));
    if (v.zero_points) q -= float(v.zero_points[i]);
    out[c] = q * scale_at(i) * v.global_scale;
  }
}

}  // namespace tidal::quant_detail
