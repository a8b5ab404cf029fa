// AVX2 + FMA + F16C kernels for CPUs without AVX-512. Compiled alone with -mavx2 -mfma -mf16c;
// same ODR rule as avx512.cpp: everything in an anonymous namespace, intrinsics only.
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "tidal/kernels/exp_constants.h"
#include "tidal/kernels/cpu/pack_scratch.h"
#include "tidal/kernels/kernel_table.h"

namespace tidal {
namespace {

struct WF32 {
  static constexpr int64_t kBytes = 4;
  static __m256 load(const uint8_t* w) { return _mm256_loadu_ps(reinterpret_cast<const float*>(w)); }
};
struct WF16 {
  static constexpr int64_t kBytes = 2;
  static __m256 load(const uint8_t* w) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
  }
};
struct WBF16 {
  static constexpr int64_t kBytes = 2;
  static __m256 load(const uint8_t* w) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};
// FP8 E4M3 codes (the FP8 KV cache), decoded exactly (finite codes; no scale): sign-extend each
// byte, shift s.eeee.mmm to bits 31, 26..20, clear the rest and multiply by 2^(127 - 7), the same
// bit placement as the quantized-weight kernels (quant_avx2.cpp); subnormals come out exact.
struct WE4M3 {
  static constexpr int64_t kBytes = 1;
  static __m256 load(const uint8_t* w) {
    const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w)));
    const __m256i b = _mm256_and_si256(_mm256_slli_epi32(q, 20), _mm256_set1_epi32(int(0x87f00000u)));
    return _mm256_mul_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(_mm256_set1_epi32(int((127u + 120u) << 23))));
  }
};

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// See avx512.cpp: one accumulator per (i, j), identical instruction sequence for any tile shape.
// The k tail (k mod 8) is copied into zero-padded 8-element buffers and processed like a full step.
template <class W, int MT, int NT>
inline void tile(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw_bytes, float* y,
                 int64_t ldy, int64_t k) {
  __m256 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_setzero_ps();
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 wv[NT];
    for (int b = 0; b < NT; ++b) wv[b] = W::load(w + b * ldw_bytes + kk * W::kBytes);
    for (int a = 0; a < MT; ++a) {
      __m256 xv = _mm256_loadu_ps(x + a * ldx + kk);
      for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_fmadd_ps(xv, wv[b], acc[a][b]);
    }
  }
  if (kk < k) {
    const int64_t rest = k - kk;
    alignas(32) uint8_t wbuf[NT][8 * 4];
    alignas(32) float xbuf[MT][8];
    __m256 wv[NT];
    for (int b = 0; b < NT; ++b) {
      std::memset(wbuf[b], 0, sizeof(wbuf[b]));
      std::memcpy(wbuf[b], w + b * ldw_bytes + kk * W::kBytes, size_t(rest * W::kBytes));
      wv[b] = W::load(wbuf[b]);
    }
    for (int a = 0; a < MT; ++a) {
      std::memset(xbuf[a], 0, sizeof(xbuf[a]));
      std::memcpy(xbuf[a], x + a * ldx + kk, size_t(rest) * sizeof(float));
      __m256 xv = _mm256_load_ps(xbuf[a]);
      for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_fmadd_ps(xv, wv[b], acc[a][b]);
    }
  }
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) y[a * ldy + b] = hsum(acc[a][b]);
}

template <class W, int NT>
inline void rows(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw_bytes, float* y,
                 int64_t ldy, int64_t m, int64_t k) {
  int64_t i = 0;
  for (; i + 3 <= m; i += 3) tile<W, 3, NT>(x + i * ldx, ldx, w, ldw_bytes, y + i * ldy, ldy, k);
  switch (m - i) {
    case 2: tile<W, 2, NT>(x + i * ldx, ldx, w, ldw_bytes, y + i * ldy, ldy, k); break;
    case 1: tile<W, 1, NT>(x + i * ldx, ldx, w, ldw_bytes, y + i * ldy, ldy, k); break;
    default: break;
  }
}

constexpr int64_t kRowBlock = 48;

// ---- Blocked path for m >= kPackedMinRows (prefill, batched decode) ----
// The same dot products in the same order as tile<> above, so results are bit-identical to the
// direct path (and so to decode with m = 1): lane l of each (i, j) accumulator sums the products
// at k = l, l + 8, l + 16, ... in increasing k, and one hsum closes it. What changes is where the
// operands come from: a panel of kPanelCols weight rows x kPanelK values is widened to F32 once
// into a small buffer and swept by every x row, the (rows x panel) accumulators are parked in a
// buffer between k panels (storing and reloading a __m256 is exact), and 4 x 3 tiles
// (12 accumulators + 3 weights + 1 x = 16 registers) keep the two FMA pipes busy without
// reloading or re-widening weights per x row.
constexpr int64_t kPackedMinRows = 4;
constexpr int64_t kPanelK = 512;     // k values per panel (multiple of 8)
constexpr int64_t kPanelCols = 24;   // weight rows per panel (multiple of 3)

template <class W>
inline void widen_panel(const uint8_t* w, int64_t ldw_bytes, int64_t cols, int64_t kk, int64_t kc,
                        float* out) {
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t* src = w + c * ldw_bytes + kk * W::kBytes;
    float* dst = out + c * kPanelK;
    for (int64_t t = 0; t < kc; t += 8) _mm256_store_ps(dst + t, W::load(src + t * W::kBytes));
  }
}

// One MT x NT tile over one k panel. FIRST: start from zero; LAST: finish into y (otherwise park
// the accumulators in acc_buf for the next panel). Compile-time flags: with run-time ones the
// compiler kept both start values live and round-tripped all 12 accumulators through the stack.
template <int MT, int NT, bool FIRST, bool LAST>
void packed_tile(const float* x, int64_t ldx, const float* wp, float* acc_buf, float* y, int64_t ldy,
                 int64_t kc) {
  __m256 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b)
      acc[a][b] = FIRST ? _mm256_setzero_ps() : _mm256_load_ps(acc_buf + (a * kPanelCols + b) * 8);
  for (int64_t t = 0; t < kc; t += 8) {
    __m256 wv[NT];
    for (int b = 0; b < NT; ++b) wv[b] = _mm256_load_ps(wp + b * kPanelK + t);
    for (int a = 0; a < MT; ++a) {
      const __m256 xv = _mm256_loadu_ps(x + a * ldx + t);
      for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_fmadd_ps(xv, wv[b], acc[a][b]);
    }
  }
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) {
      if constexpr (LAST) {
        y[a * ldy + b] = hsum(acc[a][b]);
      } else {
        _mm256_store_ps(acc_buf + (a * kPanelCols + b) * 8, acc[a][b]);
      }
    }
}

template <int MT, bool FIRST, bool LAST>
void packed_rows(const float* x, int64_t ldx, const float* wp, float* acc_buf, float* y, int64_t ldy,
                 int64_t cols, int64_t kc) {
  int64_t c = 0;
  for (; c + 3 <= cols; c += 3)
    packed_tile<MT, 3, FIRST, LAST>(x, ldx, wp + c * kPanelK, acc_buf + c * 8, y + c, ldy, kc);
  switch (cols - c) {
    case 2: packed_tile<MT, 2, FIRST, LAST>(x, ldx, wp + c * kPanelK, acc_buf + c * 8, y + c, ldy, kc); break;
    case 1: packed_tile<MT, 1, FIRST, LAST>(x, ldx, wp + c * kPanelK, acc_buf + c * 8, y + c, ldy, kc); break;
    default: break;
  }
}

// Every row of x against one widened panel: 4-row tiles, then the 1-3 rows left.
template <bool FIRST, bool LAST>
void packed_panel(const float* x, int64_t ldx, const float* wp, float* acc, float* y, int64_t ldy,
                  int64_t m, int64_t cols, int64_t kc) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4)
    packed_rows<4, FIRST, LAST>(x + i * ldx, ldx, wp, acc + i * kPanelCols * 8, y + i * ldy, ldy, cols, kc);
  const float* xr = x + i * ldx;
  float* accr = acc + i * kPanelCols * 8;
  float* yr = y + i * ldy;
  switch (m - i) {
    case 3: packed_rows<3, FIRST, LAST>(xr, ldx, wp, accr, yr, ldy, cols, kc); break;
    case 2: packed_rows<2, FIRST, LAST>(xr, ldx, wp, accr, yr, ldy, cols, kc); break;
    case 1: packed_rows<1, FIRST, LAST>(xr, ldx, wp, accr, yr, ldy, cols, kc); break;
    default: break;
  }
}

template <class W>
void matmul_packed(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw_bytes, float* y,
                   int64_t ldy, int64_t m, int64_t k, int64_t j0, int64_t j1) {
  PackScratch& scratch = pack_scratch();
  float* acc = scratch.acc.reserve(static_cast<size_t>(m) * kPanelCols * 8);
  float* wp = scratch.w.reserve(kPanelCols * kPanelK);
  // Each weight panel is widened once and swept by every x row; x rows come from L2/L3 four at a
  // time and are reused across the panel's column tiles from L1.
  for (int64_t jb = j0; jb < j1; jb += kPanelCols) {
    const int64_t cols = (j1 - jb < kPanelCols) ? j1 - jb : kPanelCols;
    for (int64_t kk = 0; kk < k; kk += kPanelK) {
      const int64_t kc = (k - kk < kPanelK) ? k - kk : kPanelK;
      const bool first = kk == 0, last = kk + kc == k;
      widen_panel<W>(w + jb * ldw_bytes, ldw_bytes, cols, kk, kc, wp);
      const float* xk = x + kk;
      float* yj = y + jb;
      if (first && last) packed_panel<true, true>(xk, ldx, wp, acc, yj, ldy, m, cols, kc);
      else if (first) packed_panel<true, false>(xk, ldx, wp, acc, yj, ldy, m, cols, kc);
      else if (last) packed_panel<false, true>(xk, ldx, wp, acc, yj, ldy, m, cols, kc);
      else packed_panel<false, false>(xk, ldx, wp, acc, yj, ldy, m, cols, kc);
    }
  }
}

template <class W>
void matmul(const float* x, int64_t ldx, const void* wv, int64_t ldw, float* y, int64_t ldy,
            int64_t m, int64_t k, int64_t j0, int64_t j1) {
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  const int64_t ldw_bytes = ldw * W::kBytes;
  // The blocked path needs whole 8-value k steps (the direct path pads the tail instead).
  if (m >= kPackedMinRows && k % 8 == 0) {
    matmul_packed<W>(x, ldx, w, ldw_bytes, y, ldy, m, k, j0, j1);
    return;
  }
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = (m - i0 < kRowBlock) ? m - i0 : kRowBlock;
    const float* xb = x + i0 * ldx;
    float* yb = y + i0 * ldy;
    int64_t j = j0;
    // 3 x 4 tiles: 12 accumulators + 4 weights of the 16 ymm registers.
    for (; j + 4 <= j1; j += 4) rows<W, 4>(xb, ldx, w + j * ldw_bytes, ldw_bytes, yb + j, ldy, mb, k);
    for (; j < j1; ++j) rows<W, 1>(xb, ldx, w + j * ldw_bytes, ldw_bytes, yb + j, ldy, mb, k);
  }
}

float dot(const float* a, const float* b, int64_t n) {
  float y;
  tile<WF32, 1, 1>(a, 0, reinterpret_cast<const uint8_t*>(b), 0, &y, 0, n);
  return y;
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) {
    __m128 r = _mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(x[i]), _mm_set_ss(y[i]));
    y[i] = _mm_cvtss_f32(r);
  }
}

template <class W>
void axpy_w(float a, const uint16_t* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  const uint8_t* xb = reinterpret_cast<const uint8_t*>(x);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, W::load(xb + i * 2), _mm256_loadu_ps(y + i)));
  }
  if (i < n) {
    alignas(32) uint16_t xbuf[8] = {0};
    alignas(32) float ybuf[8] = {0};
    std::memcpy(xbuf, x + i, size_t(n - i) * 2);
    std::memcpy(ybuf, y + i, size_t(n - i) * 4);
    _mm256_store_ps(ybuf, _mm256_fmadd_ps(av, W::load(reinterpret_cast<const uint8_t*>(xbuf)), _mm256_load_ps(ybuf)));
    std::memcpy(y + i, ybuf, size_t(n - i) * 4);
  }
}

// y += sum_r a[r] * v_r with y held in registers across rows: 32 columns at a time, then 8, then
// the padded tail. Each element sees fma(a[r], v_r[e], y[e]) for r in order, exactly as axpy_w.
template <class W>
void axpy_rows_w(const float* a, const uint8_t* v, int64_t ldv_bytes, int64_t rows, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 y0 = _mm256_loadu_ps(y + i), y1 = _mm256_loadu_ps(y + i + 8);
    __m256 y2 = _mm256_loadu_ps(y + i + 16), y3 = _mm256_loadu_ps(y + i + 24);
    const uint8_t* vr = v + i * W::kBytes;
    for (int64_t r = 0; r < rows; ++r, vr += ldv_bytes) {
      const __m256 av = _mm256_set1_ps(a[r]);
      y0 = _mm256_fmadd_ps(av, W::load(vr), y0);
      y1 = _mm256_fmadd_ps(av, W::load(vr + 8 * W::kBytes), y1);
      y2 = _mm256_fmadd_ps(av, W::load(vr + 16 * W::kBytes), y2);
      y3 = _mm256_fmadd_ps(av, W::load(vr + 24 * W::kBytes), y3);
    }
    _mm256_storeu_ps(y + i, y0);
    _mm256_storeu_ps(y + i + 8, y1);
    _mm256_storeu_ps(y + i + 16, y2);
    _mm256_storeu_ps(y + i + 24, y3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 y0 = _mm256_loadu_ps(y + i);
    const uint8_t* vr = v + i * W::kBytes;
    for (int64_t r = 0; r < rows; ++r, vr += ldv_bytes) y0 = _mm256_fmadd_ps(_mm256_set1_ps(a[r]), W::load(vr), y0);
    _mm256_storeu_ps(y + i, y0);
  }
  if (i < n) {
    const int64_t rest = n - i;
    alignas(32) float ybuf[8] = {0};
    alignas(32) uint8_t vbuf[8 * 4] = {0};
    std::memcpy(ybuf, y + i, size_t(rest) * 4);
    __m256 y0 = _mm256_load_ps(ybuf);
    const uint8_t* vr = v + i * W::kBytes;
    for (int64_t r = 0; r < rows; ++r, vr += ldv_bytes) {
      std::memcpy(vbuf, vr, size_t(rest * W::kBytes));
      y0 = _mm256_fmadd_ps(_mm256_set1_ps(a[r]), W::load(vbuf), y0);
    }
    _mm256_store_ps(ybuf, y0);
    std::memcpy(y + i, ybuf, size_t(rest) * 4);
  }
}

void axpy_rows(DType vt, const float* a, const void* v, int64_t ldv, int64_t rows, float* y, int64_t n) {
  const uint8_t* vb = static_cast<const uint8_t*>(v);
  switch (vt) {
    case DType::kF32: axpy_rows_w<WF32>(a, vb, ldv * 4, rows, y, n); break;
    case DType::kF16: axpy_rows_w<WF16>(a, vb, ldv * 2, rows, y, n); break;
    case DType::kF8E4M3: axpy_rows_w<WE4M3>(a, vb, ldv, rows, y, n); break;
    default: axpy_rows_w<WBF16>(a, vb, ldv * 2, rows, y, n); break;
  }
}

// exp(x - shift) of 8 lanes (kernel_table.h: the scalar table does the same steps per lane).
inline __m256 exp8(__m256 x, __m256 shift) {
  const __m256 d = _mm256_sub_ps(x, shift);
  const __m256 keep = _mm256_cmp_ps(d, _mm256_set1_ps(kExpMin), _CMP_GE_OQ);  // false for NaN too
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(d, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Hi), d);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP[i]));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  // n is clamped only where the lane is masked off anyway (d < kExpMin or NaN).
  const __m256i ni = _mm256_cvtps_epi32(_mm256_and_ps(n, keep));
  const __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23));
  return _mm256_and_ps(_mm256_mul_ps(y, scale), keep);
}

double exp_sum(const float* x, float shift, float* out, int64_t n) {
  const __m256 sh = _mm256_set1_ps(shift);
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();  // lanes 0-3, 4-7
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_loadu_ps(x + i), sh);
    _mm256_storeu_ps(out + i, e);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  if (i < n) {  // the tail: padded lanes are masked to +0.0, which leaves the lane sums unchanged
    const int64_t rest = n - i;
    alignas(32) float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(buf, x + i, size_t(rest) * sizeof(float));
    alignas(32) int32_t mask[8];
    for (int l = 0; l < 8; ++l) mask[l] = l < rest ? -1 : 0;
    const __m256 e = _mm256_and_ps(exp8(_mm256_load_ps(buf), sh), _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(mask))));
    _mm256_store_ps(buf, e);
    std::memcpy(out + i, buf, size_t(rest) * sizeof(float));
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  const __m256d t = _mm256_add_pd(lo, hi);                                                   // l_j + l_{j+4}
  const __m128d u = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));      // (t0+t2, t1+t3)
  return _mm_cvtsd_f64(_mm_add_sd(u, _mm_unpackhi_pd(u, u)));
}

// The scalar table's silu_mul, 8 lanes at a time.
inline __m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 e = exp8(_mm256_or_ps(g, sign), _mm256_setzero_ps());  // exp(-|g|)
  const __m256 neg = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 num = _mm256_blendv_ps(g, _mm256_mul_ps(g, e), neg);
  return _mm256_mul_ps(_mm256_div_ps(num, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    alignas(32) float g[8] = {0, 0, 0, 0, 0, 0, 0, 0}, u[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(g, gate + i, size_t(n - i) * sizeof(float));
    std::memcpy(u, up + i, size_t(n - i) * sizeof(float));
    _mm256_store_ps(g, silu_mul8(_mm256_load_ps(g), _mm256_load_ps(u)));
    std::memcpy(out + i, g, size_t(n - i) * sizeof(float));
  }
}

const KernelTable kTable = {"avx2", matmul<WF32>, matmul<WF16>, matmul<WBF16>, matmul<WE4M3>, dot, axpy,
                            axpy_w<WF16>, axpy_w<WBF16>, axpy_rows, exp_sum, silu_mul, &kQuantKernelTableAvx2};

}  // namespace

double exp_sum_avx2(const float* x, float shift, float* out, int64_t n) { return exp_sum(x, shift, out, n); }
void silu_mul_avx2(const float* gate, const float* up, float* out, int64_t n) { silu_mul(gate, up, out, n); }

const KernelTable& kernel_table_avx2() {
  static const KernelTable table = [] {
    KernelTable t = kTable;
    if (cpu_features().avx_vnni) t.quant = &quant_kernel_table_avx2_vnni();
    return t;
  }();
  return table;
}

}  // namespace tidal
