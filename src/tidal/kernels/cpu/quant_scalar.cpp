// Portable quantized-weight kernels (the reference the AVX2 ones are checked against, and the
// fallback on CPUs without AVX2). Each weight row is decoded with exactly the arithmetic of the
// format's reference dequantization, (value(code) * scale) * global_scale, and then reduced with
// the same fixed 4-lane order as the scalar F32 matmul: so this table's result is bit-identical to
// "dequantize, then scalar matmul_f32" (tests/kernels/quant_kernel_test.cpp checks that).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tidal/core/e8m0.h"
#include "tidal/core/fp4.h"
#include "tidal/core/fp8.h"
#include "tidal/kernels/quant_kernel_table.h"

namespace tidal {
namespace {

constexpr int64_t kChunk = 256;  // codes decoded at a time (a multiple of 4: lane order is kept)
constexpr int64_t kRows = 8;     // x rows sharing one decoded chunk

float f32_scale(const QuantView& w, int64_t i) {
  float s;
  std::memcpy(&s, static_cast<const uint8_t*>(w.scales) + 4 * i, 4);
  return s;
}

struct Int8 {
  static float value(const QuantView& w, int64_t r, int64_t c) {
    return float(int8_t(w.data[r * w.data_stride + c]));
  }
  static float scale(const QuantView& w, int64_t i) { return f32_scale(w, i); }
};
struct E4M3 {
  static float value(const QuantView& w, int64_t r, int64_t c) {
    return fp8_e4m3_to_f32(w.data[r * w.data_stride + c]);
  }
  static float scale(const QuantView& w, int64_t i) { return f32_scale(w, i); }
};
struct E5M2 {
  static float value(const QuantView& w, int64_t r, int64_t c) {
    return fp8_e5m2_to_f32(w.data[r * w.data_stride + c]);
  }
  static float scale(const QuantView& w, int64_t i) { return f32_scale(w, i); }
};
inline float fp4_at(const QuantView& w, int64_t r, int64_t c) {
  return fp4_e2m1_to_f32(fp4_unpack(w.data[r * w.data_stride + (c >> 1)], c));
}
struct NvFp4 {
  static float value(const QuantView& w, int64_t r, int64_t c) { return fp4_at(w, r, c); }
  static float scale(const QuantView& w, int64_t i) {
    return fp8_e4m3_to_f32(static_cast<const uint8_t*>(w.scales)[i]);
  }
};
struct MxFp4 {
  static float value(const QuantView& w, int64_t r, int64_t c) { return fp4_at(w, r, c); }
  static float scale(const QuantView& w, int64_t i) {
    return e8m0_to_f32(static_cast<const uint8_t*>(w.scales)[i]);
  }
};

// Decode W[r, c0:c1) into out (the reference formula, zero points excluded by contract).
template <class F>
void decode(const QuantView& w, int64_t r, int64_t c0, int64_t c1, float* out) {
  const QuantLayout& l = w.layout;
  const int64_t srow = (r / l.block_rows) * w.scale_stride;
  for (int64_t c = c0; c < c1; ++c)
    out[c - c0] = F::value(w, r, c) * F::scale(w, srow + c / l.block_cols) * w.global_scale;
}

template <class F>
void matmul(const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m, int64_t j0,
            int64_t j1) {
  const int64_t k = w.layout.n_in;
  float wbuf[kChunk];
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    const int64_t mb = std::min(kRows, m - i0);
    for (int64_t j = j0; j < j1; ++j) {
      float s[kRows][4] = {};
      for (int64_t c0 = 0; c0 < k; c0 += kChunk) {
        const int64_t c1 = std::min(k, c0 + kChunk);
        decode<F>(w, j, c0, c1, wbuf);
        for (int64_t a = 0; a < mb; ++a) {
          const float* xr = x + (i0 + a) * ldx;
          for (int64_t c = c0; c < c1; ++c) s[a][c & 3] += xr[c] * wbuf[c - c0];
        }
      }
      for (int64_t a = 0; a < mb; ++a) y[(i0 + a) * ldy + j] = (s[a][0] + s[a][1]) + (s[a][2] + s[a][3]);
    }
  }
}

void quantize_rows_i8(const float* x, int64_t ldx, int64_t m, int64_t k, int8_t* xq, int64_t ldq,
                      float* x_scale) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    float amax = 0.0f;
    for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(xr[c]));
    x_scale[i] = amax / 127.0f;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int64_t c = 0; c < k; ++c) {
      const float q = std::nearbyint(xr[c] * inv);
      xq[i * ldq + c] = int8_t(std::clamp(q, -127.0f, 127.0f));
    }
  }
}

void matmul_i8_i8(const int8_t* xq, int64_t ldq, const float* x_scale, const QuantView& w, float* y,
                  int64_t ldy, int64_t m, int64_t j0, int64_t j1) {
  const int64_t k = w.layout.n_in;
  for (int64_t j = j0; j < j1; ++j) {
    const int8_t* wr = reinterpret_cast<const int8_t*>(w.data + j * w.data_stride);
    const float ws = f32_scale(w, j * w.scale_stride);
    for (int64_t i = 0; i < m; ++i) {
      const int8_t* xr = xq + i * ldq;
      int32_t acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += int32_t(xr[c]) * int32_t(wr[c]);
      y[i * ldy + j] = (float(acc) * x_scale[i]) * ws;
    }
  }
}

// W4A8: per block, the exact integer sum of xq * (2 x value), times the block's scale, summed over
// blocks in order; then x_scale * 0.5.
template <class F>
void matmul_fp4_i8(const int8_t* xq, int64_t ldq, const float* x_scale, const QuantView& w, float* y,
                   int64_t ldy, int64_t m, int64_t j0, int64_t j1) {
  const QuantLayout& l = w.layout;
  const int64_t k = l.n_in, bc = l.block_cols;
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t srow = (j / l.block_rows) * w.scale_stride;
    for (int64_t i = 0; i < m; ++i) {
      const int8_t* xr = xq + i * ldq;
      float acc = 0.0f;
      for (int64_t c0 = 0, cb = 0; c0 < k; c0 += bc, ++cb) {
        int32_t s = 0;
        for (int64_t c = c0; c < std::min(k, c0 + bc); ++c) s += int32_t(xr[c]) * int32_t(2.0f * fp4_at(w, j, c));
        acc += float(s) * (F::scale(w, srow + cb) * w.global_scale);
      }
      y[i * ldy + j] = acc * (x_scale[i] * 0.5f);
    }
  }
}

}  // namespace

extern const QuantKernelTable kQuantKernelTableScalar = {"scalar",         matmul<Int8>,  matmul<E4M3>,
                                                         matmul<E5M2>,     matmul<NvFp4>, matmul<MxFp4>,
                                                         quantize_rows_i8, matmul_i8_i8,
                                                         matmul_fp4_i8<NvFp4>, matmul_fp4_i8<MxFp4>,
                                                         nullptr,          nullptr,
                                                         nullptr,          nullptr};

}  // namespace tidal
