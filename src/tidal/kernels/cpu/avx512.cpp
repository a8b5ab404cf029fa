// AVX-512 kernels (F + BW + VL + DQ). This file alone is compiled with -mavx512*; it must not
// define or instantiate any inline function or template shared with other files (ODR: the linker
// could keep this file's AVX-512 copy for everyone), so everything here is in an anonymous
// namespace and uses only intrinsics and plain pointers.
#include <immintrin.h>

#include "tidal/kernels/kernel_table.h"

namespace tidal {
namespace {

struct WF32 {
  static __m512 load(const void* w, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(w) + i); }
  static __m512 load_mask(const void* w, int64_t i, __mmask16 mk) {
    return _mm512_maskz_loadu_ps(mk, static_cast<const float*>(w) + i);
  }
};
struct WF16 {
  static __m512 load(const void* w, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static __m512 load_mask(const void* w, int64_t i, __mmask16 mk) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, static_cast<const uint16_t*>(w) + i));
  }
};
struct WBF16 {
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const void* w, int64_t i) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static __m512 load_mask(const void* w, int64_t i, __mmask16 mk) {
    return widen(_mm256_maskz_loadu_epi16(mk, static_cast<const uint16_t*>(w) + i));
  }
};

// Element size in bytes of each weight type, for row pointer arithmetic.
template <class W> constexpr int64_t kWBytes = 2;
template <> constexpr int64_t kWBytes<WF32> = 4;

// MT x NT tile: MT rows of x against NT rows of w. Every (i, j) pair has its own accumulator and
// sees exactly the same instruction sequence whatever MT/NT are: batch-invariant by construction.
template <class W, int MT, int NT>
inline void tile(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw_bytes, float* y,
                 int64_t ldy, int64_t k) {
  __m512 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16) {
    __m512 wv[NT];
    for (int b = 0; b < NT; ++b) wv[b] = W::load(w + b * ldw_bytes, kk);
    for (int a = 0; a < MT; ++a) {
      __m512 xv = _mm512_loadu_ps(x + a * ldx + kk);
      for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_fmadd_ps(xv, wv[b], acc[a][b]);
    }
  }
  if (kk < k) {
    __mmask16 mk = __mmask16((1u << (k - kk)) - 1u);
    __m512 wv[NT];
    for (int b = 0; b < NT; ++b) wv[b] = W::load_mask(w + b * ldw_bytes, kk, mk);
    for (int a = 0; a < MT; ++a) {
      __m512 xv = _mm512_maskz_loadu_ps(mk, x + a * ldx + kk);
      for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_fmadd_ps(xv, wv[b], acc[a][b]);
    }
  }
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) y[a * ldy + b] = _mm512_reduce_add_ps(acc[a][b]);
}

template <class W, int NT>
inline void rows(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw_bytes, float* y,
                 int64_t ldy, int64_t m, int64_t k) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) tile<W, 4, NT>(x + i * ldx, ldx, w, ldw_bytes, y + i * ldy, ldy, k);
  switch (m - i) {
    case 3: tile<W, 3, NT>(x + i * ldx, ldx, w, ldw_bytes, y + i * ldy, ldy, k); break;
    case 2: tile<W, 2, NT>(x + i * ldx, ldx, w, ldw_bytes, y + i * ldy, ldy, k); break;
    case 1: tile<W, 1, NT>(x + i * ldx, ldx, w, ldw_bytes, y + i * ldy, ldy, k); break;
    default: break;
  }
}

constexpr int64_t kRowBlock = 64;  // x rows per pass: 64 x k floats stay in L2 while w streams

template <class W>
void matmul(const float* x, int64_t ldx, const void* wv, int64_t ldw, float* y, int64_t ldy,
            int64_t m, int64_t k, int64_t j0, int64_t j1) {
  const uint8_t* w = static_cast<const uint8_t*>(wv);
  const int64_t ldw_bytes = ldw * kWBytes<W>;
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = (m - i0 < kRowBlock) ? m - i0 : kRowBlock;
    const float* xb = x + i0 * ldx;
    float* yb = y + i0 * ldy;
    int64_t j = j0;
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
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  }
  if (i < n) {
    __mmask16 mk = __mmask16((1u << (n - i)) - 1u);
    __m512 r = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(mk, x + i), _mm512_maskz_loadu_ps(mk, y + i));
    _mm512_mask_storeu_ps(y + i, mk, r);
  }
}

template <class W>
void axpy_w(float a, const uint16_t* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, W::load(x, i), _mm512_loadu_ps(y + i)));
  }
  if (i < n) {
    __mmask16 mk = __mmask16((1u << (n - i)) - 1u);
    __m512 r = _mm512_fmadd_ps(av, W::load_mask(x, i, mk), _mm512_maskz_loadu_ps(mk, y + i));
    _mm512_mask_storeu_ps(y + i, mk, r);
  }
}

// One axpy per row, in row order: the contract's definition, used as is by this level.
void axpy_rows(DType vt, const float* a, const void* v, int64_t ldv, int64_t rows, float* y, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    switch (vt) {
      case DType::kF32: axpy(a[r], static_cast<const float*>(v) + r * ldv, y, n); break;
      case DType::kF16: axpy_w<WF16>(a[r], static_cast<const uint16_t*>(v) + r * ldv, y, n); break;
      case DType::kF8E4M3: axpy_rows_e4m3_avx2(a + r, static_cast<const uint8_t*>(v) + r * ldv, ldv, 1, y, n); break;
      default: axpy_w<WBF16>(a[r], static_cast<const uint16_t*>(v) + r * ldv, y, n); break;
    }
  }
}

// FP8 E4M3 (KV cache): the AVX2 kernels (no AVX-512 variant yet; every AVX-512 CPU runs them).
const KernelTable kTable = {"avx512", matmul<WF32>, matmul<WF16>, matmul<WBF16>, matmul_e4m3_avx2, dot, axpy,
                            axpy_w<WF16>, axpy_w<WBF16>, axpy_rows, exp_sum_avx2, silu_mul_avx2, &kQuantKernelTableAvx2};

}  // namespace

const KernelTable& kernel_table_avx512() { return kTable; }

}  // namespace tidal
