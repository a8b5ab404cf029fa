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

// FP4 scale search (nvfp4.cpp, mxfp4.cpp). Both formats' blocks are one row of at most 32 columns.
constexpr int kMaxFp4Block = 32;

// Sum of squared errors of N magnitudes a[] (zero-padded past the block) encoded as E2M1 with scale
// s: |a| - s * e2m1(|a| / s). The fast form the search ranks candidates with: the nearest E2M1
// magnitude is found by comparisons with the midpoints (a value on a midpoint has the same error
// either way, so round-to-nearest-even need not be reproduced). Every step is elementwise and the
// sum is a fixed pairwise tree (element i + element i + N/2, and so on), so the compiler vectorizes
// it and the result does not depend on the vector width. s == 0 encodes every value as 0.
template <int N>
float e2m1_sq_error(const float* a, float s) {
  static_assert(N >= 2 && (N & (N - 1)) == 0, "N must be a power of two");
  float d2[N];
  if (s == 0.0f) {
    for (int i = 0; i < N; ++i) d2[i] = a[i] * a[i];
  } else {
    const float inv = 1.0f / s;
    for (int i = 0; i < N; ++i) {
      const float x = a[i] * inv;
      float v = x > 0.25f ? 0.5f : 0.0f;
      v += x > 0.75f ? 0.5f : 0.0f;
      v += x > 1.25f ? 0.5f : 0.0f;
      v += x > 1.75f ? 0.5f : 0.0f;
      v += x > 2.5f ? 1.0f : 0.0f;
      v += x > 3.5f ? 1.0f : 0.0f;
      v += x > 5.0f ? 2.0f : 0.0f;
      const float d = a[i] - v * s;
      d2[i] = d * d;
    }
  }
  for (int half = N / 2; half >= 1; half /= 2)
    for (int i = 0; i < half; ++i) d2[i] += d2[i + half];
  return d2[0];
}

// Encodes w[0..n) (n <= kMaxFp4Block) as E2M1 codes q[] under block scale `block_scale` and global
// scale g, exactly as encode_block(..., f32_to_fp4_e2m1) does: q = e2m1(w / (block_scale * g)), 0
// when that scale is 0. Returns the exact squared error of the reference decoder's values
// ((value * block_scale) * g), accumulated in double. The search keeps a candidate only if this is
// strictly below the amax rule's, so the chosen scale never has a larger error than the rule's, to the
// last bit. Written elementwise so that it vectorizes: the code is the number of E2M1 midpoints below
// |x| (a tie goes to the even code: > at 0.25, 1.25, 2.5, 5; >= at 0.75, 1.75, 3.5; past 5 is the
// saturated 6), which is f32_to_fp4_e2m1's round-to-nearest-even (core_test compares every code).
inline double encode_fp4_block(const float* w, int64_t n, float block_scale, float g, uint8_t* q) {
  const float s = block_scale * g;
  int32_t code[kMaxFp4Block];
  double d2[kMaxFp4Block];
  for (int64_t i = 0; i < n; ++i) {
    const float x = s == 0.0f ? 0.0f : w[i] / s;
    const float ax = std::fabs(x);
    const int32_t c1 = ax > 0.25f, c2 = ax >= 0.75f, c3 = ax > 1.25f, c4 = ax >= 1.75f, c5 = ax > 2.5f,
                  c6 = ax >= 3.5f, c7 = ax > 5.0f;
    const float v = 0.5f * float(c1 + c2 + c3 + c4) + float(c5 + c6) + 2.0f * float(c7);
    code[i] = (c1 + c2 + c3 + c4 + c5 + c6 + c7) | (std::signbit(x) ? 8 : 0);
    const double d = double(std::copysign(v, x) * block_scale * g) - double(w[i]);
    d2[i] = d * d;
  }
  for (int64_t i = 0; i < n; ++i) q[i] = uint8_t(code[i]);
  double e[4] = {0.0, 0.0, 0.0, 0.0};  // four sums in a fixed order (a shorter dependency chain)
  for (int64_t i = 0; i < n; ++i) e[i & 3] += d2[i];
  return (e[0] + e[1]) + (e[2] + e[3]);
}

// Writes the FP4 codes q[0..n) of row r from column c0 (even) on.
inline void put_fp4_codes(const QuantLayout& l, uint8_t* data, int64_t r, int64_t c0, const uint8_t* q,
                          int64_t n) {
  uint8_t* row = data + r * l.row_bytes + c0 / 2;
  for (int64_t i = 0; i + 1 < n; i += 2) row[i / 2] = uint8_t((q[i] & 0xf) | (q[i + 1] << 4));
  if (n & 1) row[n / 2] = uint8_t(q[n - 1] & 0xf);
}

// out[c] = (value(code) - zero) * scale(rb, cb) * global, for one row.
template <class ValueFn, class ScaleFn>
void decode_row(const QuantView& v, int64_t r, float* out, ValueFn value, ScaleFn scale_at) {
  const QuantLayout& l = v.layout;
  const int64_t rb = r / l.block_rows;
  const uint8_t* row = v.data + r * v.data_stride;
  for (int64_t c = 0; c < l.n_in; ++c) {
    const int64_t cb = c / l.block_cols;
    float q = value(get_code(l, row, 0, c));
    if (v.zero_points) q -= float(v.zero_points[rb * l.n_scale_cols + cb]);
    out[c] = q * scale_at(rb * v.scale_stride + cb) * v.global_scale;
  }
}

}  // namespace tidal::quant_detail
