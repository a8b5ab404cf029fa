// Portable reference kernels: plain C++, baseline x86-64 (or any CPU). Every other table is
// checked against this one in tests/kernels.
#include <cmath>
#include <cstring>

#include "tidal/core/fp8.h"
#include "tidal/kernels/exp_constants.h"
#include "tidal/kernels/kernel_table.h"

namespace tidal {
namespace {

inline float load_w(const float* w, int64_t i) { return w[i]; }
struct F16 { uint16_t v; };
struct BF16 { uint16_t v; };
struct E4M3 { uint8_t v; };
inline float load_w(const F16* w, int64_t i) { return f16_to_f32(w[i].v); }
inline float load_w(const BF16* w, int64_t i) { return bf16_to_f32(w[i].v); }
inline float load_w(const E4M3* w, int64_t i) { return fp8_e4m3_to_f32(w[i].v); }

// Four interleaved partial sums (fixed order: lane l takes k = l mod 4, then (s0+s1)+(s2+s3)).
template <class W>
float dot_w(const float* x, const W* w, int64_t k) {
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= k; i += 4) {
    for (int l = 0; l < 4; ++l) s[l] += x[i + l] * load_w(w, i + l);
  }
  for (; i < k; ++i) s[i & 3] += x[i] * load_w(w, i);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

template <class W>
void matmul(const float* x, int64_t ldx, const void* wv, int64_t ldw, float* y, int64_t ldy,
            int64_t m, int64_t k, int64_t j0, int64_t j1) {
  const W* w = static_cast<const W*>(wv);
  for (int64_t j = j0; j < j1; ++j) {
    for (int64_t i = 0; i < m; ++i) y[i * ldy + j] = dot_w(x + i * ldx, w + j * ldw, k);
  }
}

float dot(const float* a, const float* b, int64_t n) { return dot_w(a, b, n); }

void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

template <class W>
void axpy_w(float a, const uint16_t* x, float* y, int64_t n) {
  const W* w = reinterpret_cast<const W*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] += a * load_w(w, i);
}

// One axpy per row, in row order: the contract's definition, used as is by this level.
void axpy_rows(DType vt, const float* a, const void* v, int64_t ldv, int64_t rows, float* y, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    switch (vt) {
      case DType::kF32: axpy(a[r], static_cast<const float*>(v) + r * ldv, y, n); break;
      case DType::kF16: axpy_w<F16>(a[r], static_cast<const uint16_t*>(v) + r * ldv, y, n); break;
      case DType::kF8E4M3: {
        const E4M3* w = static_cast<const E4M3*>(v) + r * ldv;
        for (int64_t i = 0; i < n; ++i) y[i] += a[r] * load_w(w, i);
        break;
      }
      default: axpy_w<BF16>(a[r], static_cast<const uint16_t*>(v) + r * ldv, y, n); break;
    }
  }
}

// exp(d) for d = x - shift: the operations of the AVX2 kernel, one lane at a time (std::fma for
// each fused step), so both give the same bits.
float exp_lane(float d) {
  if (!(d >= kExpMin)) return 0.0f;  // also NaN -> 0, like the AVX2 compare-and-mask
  const float n = std::nearbyint(d * kLog2e);
  float r = std::fma(n, -kLn2Hi, d);
  r = std::fma(n, -kLn2Lo, r);
  float p = kExpP[0];
  for (int i = 1; i < 6; ++i) p = std::fma(p, r, kExpP[i]);
  const float r2 = r * r;
  const float y = std::fma(p, r2, r) + 1.0f;
  const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

double exp_sum(const float* x, float shift, float* out, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < n; ++i) {
    const float e = exp_lane(x[i] - shift);
    out[i] = e;
    lane[i & 7] += double(e);
  }
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float e = exp_lane(-std::fabs(g));  // <= 1: no overflow for any g
    out[i] = (g < 0.0f ? g * e : g) / (1.0f + e) * up[i];
  }
}

const KernelTable kTable = {"scalar", matmul<float>, matmul<F16>, matmul<BF16>, matmul<E4M3>, dot, axpy,
                            axpy_w<F16>, axpy_w<BF16>, axpy_rows, exp_sum, silu_mul, &kQuantKernelTableScalar};

}  // namespace

const KernelTable& kernel_table_scalar() { return kTable; }

}  // namespace tidal
