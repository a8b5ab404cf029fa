// AVX-512 kernels (F + BW + VL + DQ). This file alone is compiled with -mavx512*; it must not
// define or instantiate any inline function or template shared with other files (ODR: the linker
// could keep this file's AVX-512 copy for everyone), so everything here is in an anonymous
// namespace and uses only intrinsics and plain pointers.
#include <immintrin.h>

#include <cstdlib>

#include "tidal/kernels/cpu/pack_scratch.h"
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

// FP8 E4M3 codes (the FP8 KV cache), decoded exactly as in avx2.cpp (finite codes, no scale):
// sign-extend each byte, shift s.eeee.mmm to bits 31, 26..20, clear the rest, multiply by 2^120.
struct WE4M3 {
  static __m512 decode(__m128i codes) {
    const __m512i b = _mm512_and_si512(_mm512_slli_epi32(_mm512_cvtepi8_epi32(codes), 20),
                                       _mm512_set1_epi32(int(0x87f00000u)));
    return _mm512_mul_ps(_mm512_castsi512_ps(b), _mm512_castsi512_ps(_mm512_set1_epi32(int((127u + 120u) << 23))));
  }
  static __m512 load(const void* w, int64_t i) {
    return decode(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(w) + i)));
  }
  static __m512 load_mask(const void* w, int64_t i, __mmask16 mk) {
    return decode(_mm_maskz_loadu_epi8(mk, static_cast<const uint8_t*>(w) + i));
  }
};

// Element size in bytes of each weight type, for row pointer arithmetic.
template <class W> constexpr int64_t kWBytes = 2;
template <> constexpr int64_t kWBytes<WF32> = 4;
template <> constexpr int64_t kWBytes<WE4M3> = 1;

// The direct path (decode: m < 4 rows against NT weight rows streamed from DRAM) prefetches the
// next NT rows (the next tile's) at the offset it is reading, one line per line read. Rows of 4 KB
// (k = 2048 F16/BF16) are one page each, and the hardware prefetchers do not cross pages: measured
// on AMD EPYC (Zen, AVX-512), bench_quant gemv/bf16 5632x2048 and 2048x5632, 2 threads, 24-31 GB/s
// without, 35-46 GB/s with (1 thread 17 -> 20-23 GB/s). Prefetches change no result.

// MT x NT tile: MT rows of x against NT rows of w. Every (i, j) pair has its own accumulator and
// sees exactly the same instruction sequence whatever MT/NT are: batch-invariant by construction.
// {reduce_add(a), reduce_add(b), reduce_add(c), reduce_add(d)} with the same additions in the same
// order as _mm512_reduce_add_ps (GCC: 256-bit halves, then 128-bit halves, then elements i and i + 2,
// then 0 and 1), four vectors at a time: ~14 instructions instead of ~32. The same bits, so tiles
// that use it and tiles that do not stay interchangeable (batch invariance).
inline __m128 reduce_add4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0xee), _mm512_shuffle_f32x4(a, b, 0x44));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0xee), _mm512_shuffle_f32x4(c, d, 0x44));
  // 128-bit lane p: the four partial sums of vector p (a, b, c, d), upper half + lower half.
  const __m512 t = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0xdd), _mm512_shuffle_f32x4(ab, cd, 0x88));
  const __m512 u = _mm512_add_ps(t, _mm512_permute_ps(t, 0x4e));  // elements i + (i + 2)
  const __m512 v = _mm512_add_ps(u, _mm512_permute_ps(u, 0xb1));  // then 0 + 1
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), v));
}

template <class W, int MT, int NT>
inline void tile(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw_bytes, float* y,
                 int64_t ldy, int64_t k) {
  __m512 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16) {
    __m512 wv[NT];
    if ((kk * kWBytes<W>) % 64 == 0) {  // one prefetch per cache line: the next tile's rows, same offset
      for (int b = 0; b < NT; ++b)
        _mm_prefetch(reinterpret_cast<const char*>(w + (NT + b) * ldw_bytes + kk * kWBytes<W>), _MM_HINT_T0);
    }
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
  if constexpr (NT == 4) {
    for (int a = 0; a < MT; ++a) _mm_storeu_ps(y + a * ldy, reduce_add4(acc[a][0], acc[a][1], acc[a][2], acc[a][3]));
  } else {
    for (int a = 0; a < MT; ++a)
      for (int b = 0; b < NT; ++b) y[a * ldy + b] = _mm512_reduce_add_ps(acc[a][b]);
  }
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

// ---- Blocked path for m >= kPackedMinRows (prefill, batched decode) ----
// The same dot products in the same order as tile<> above, so results are bit-identical to the
// direct path (and so to decode with m = 1): lane l of each (i, j) accumulator sums the products at
// k = l, l + 16, l + 32, ... in increasing k, and one _mm512_reduce_add_ps closes it. A panel of
// kPanelCols weight rows x kPanelK values is widened to F32 once into a small buffer and swept by
// every x row; the (rows x panel) accumulators are parked in a buffer between k panels (storing and
// reloading a __m512 is exact); 4 x 6 tiles (24 accumulators + 6 weights + 1 x of the 32
// registers) reuse each loaded weight for 4 x rows and each x for 6 weight rows.
constexpr int64_t kPackedMinRows = 4;
constexpr int64_t kPanelK = 512;    // k values per panel (multiple of 16)
// Weight rows per panel (multiple of kTileCols): a 12 x 512 F32 panel is 24 KB, so it stays in L1
// with the x rows being swept. bench_kernels matmul/avx512/BF16/{64,512}/2048/2048, one thread, on
// AMD EPYC (Zen, AVX-512): 24 rows (48 KB, from L2) 95-140 GFLOP/s, 12 rows 145-160.
constexpr int64_t kPanelCols = 12;
constexpr int kTileRows = 4, kTileCols = 6;

template <class W>
inline void widen_panel(const uint8_t* w, int64_t ldw_bytes, int64_t cols, int64_t kk, int64_t kc, float* out) {
  for (int64_t c = 0; c < cols; ++c) {
    const uint8_t* src = w + c * ldw_bytes;
    float* dst = out + c * kPanelK;
    for (int64_t t = 0; t < kc; t += 16) _mm512_store_ps(dst + t, W::load(src, kk + t));
  }
}

// One MT x NT tile over one k panel. FIRST: start from zero; LAST: finish into y (otherwise park
// the accumulators in acc_buf for the next panel).
template <int MT, int NT, bool FIRST, bool LAST>
void packed_tile(const float* x, int64_t ldx, const float* wp, float* acc_buf, float* y, int64_t ldy, int64_t kc) {
  __m512 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b)
      acc[a][b] = FIRST ? _mm512_setzero_ps() : _mm512_load_ps(acc_buf + (a * kPanelCols + b) * 16);
  for (int64_t t = 0; t < kc; t += 16) {
    __m512 wv[NT];
    for (int b = 0; b < NT; ++b) wv[b] = _mm512_load_ps(wp + b * kPanelK + t);
    for (int a = 0; a < MT; ++a) {
      const __m512 xv = _mm512_loadu_ps(x + a * ldx + t);
      for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_fmadd_ps(xv, wv[b], acc[a][b]);
    }
  }
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) {
      if constexpr (LAST) {
        y[a * ldy + b] = _mm512_reduce_add_ps(acc[a][b]);
      } else {
        _mm512_store_ps(acc_buf + (a * kPanelCols + b) * 16, acc[a][b]);
      }
    }
}

template <int MT, bool FIRST, bool LAST>
void packed_rows(const float* x, int64_t ldx, const float* wp, float* acc_buf, float* y, int64_t ldy, int64_t cols,
                 int64_t kc) {
  int64_t c = 0;
  for (; c + kTileCols <= cols; c += kTileCols)
    packed_tile<MT, kTileCols, FIRST, LAST>(x, ldx, wp + c * kPanelK, acc_buf + c * 16, y + c, ldy, kc);
  const float* wr = wp + c * kPanelK;
  float* ar = acc_buf + c * 16;
  switch (cols - c) {
    case 5: packed_tile<MT, 5, FIRST, LAST>(x, ldx, wr, ar, y + c, ldy, kc); break;
    case 4: packed_tile<MT, 4, FIRST, LAST>(x, ldx, wr, ar, y + c, ldy, kc); break;
    case 3: packed_tile<MT, 3, FIRST, LAST>(x, ldx, wr, ar, y + c, ldy, kc); break;
    case 2: packed_tile<MT, 2, FIRST, LAST>(x, ldx, wr, ar, y + c, ldy, kc); break;
    case 1: packed_tile<MT, 1, FIRST, LAST>(x, ldx, wr, ar, y + c, ldy, kc); break;
    default: break;
  }
}

// Every row of x against one widened panel: 4-row tiles, then the 1-3 rows left.
template <bool FIRST, bool LAST>
void packed_panel(const float* x, int64_t ldx, const float* wp, float* acc, float* y, int64_t ldy, int64_t m,
                  int64_t cols, int64_t kc) {
  int64_t i = 0;
  for (; i + kTileRows <= m; i += kTileRows)
    packed_rows<kTileRows, FIRST, LAST>(x + i * ldx, ldx, wp, acc + i * kPanelCols * 16, y + i * ldy, ldy, cols, kc);
  const float* xr = x + i * ldx;
  float* accr = acc + i * kPanelCols * 16;
  float* yr = y + i * ldy;
  switch (m - i) {
    case 3: packed_rows<3, FIRST, LAST>(xr, ldx, wp, accr, yr, ldy, cols, kc); break;
    case 2: packed_rows<2, FIRST, LAST>(xr, ldx, wp, accr, yr, ldy, cols, kc); break;
    case 1: packed_rows<1, FIRST, LAST>(xr, ldx, wp, accr, yr, ldy, cols, kc); break;
    default: break;
  }
}

template <class W>
void matmul_packed(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw_bytes, float* y, int64_t ldy,
                   int64_t m, int64_t k, int64_t j0, int64_t j1) {
  PackScratch& scratch = pack_scratch();
  float* acc = scratch.acc.reserve(static_cast<size_t>(m) * kPanelCols * 16);
  float* wp = scratch.w.reserve(kPanelCols * kPanelK);
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
  const int64_t ldw_bytes = ldw * kWBytes<W>;
  // The blocked path needs whole 16-value k steps (the direct path masks the tail instead).
  if (m >= kPackedMinRows && k % 16 == 0) {
    matmul_packed<W>(x, ldx, w, ldw_bytes, y, ldy, m, k, j0, j1);
    return;
  }
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

// y += sum_r a[r] * v_r with y held in registers across the rows (attention's P x V: 16-row KV
// blocks of one head, 64-128 columns): 64 columns at a time, then 16, then a masked tail. Each
// element sees fma(a[r], v_r[e], y[e]) for r in order, as the contract (and axpy per row) says.
template <class W>
void axpy_rows_w(const float* a, const uint8_t* v, int64_t ldv_bytes, int64_t rows, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512 y0 = _mm512_loadu_ps(y + i), y1 = _mm512_loadu_ps(y + i + 16);
    __m512 y2 = _mm512_loadu_ps(y + i + 32), y3 = _mm512_loadu_ps(y + i + 48);
    const uint8_t* vr = v;
    for (int64_t r = 0; r < rows; ++r, vr += ldv_bytes) {
      const __m512 av = _mm512_set1_ps(a[r]);
      y0 = _mm512_fmadd_ps(av, W::load(vr, i), y0);
      y1 = _mm512_fmadd_ps(av, W::load(vr, i + 16), y1);
      y2 = _mm512_fmadd_ps(av, W::load(vr, i + 32), y2);
      y3 = _mm512_fmadd_ps(av, W::load(vr, i + 48), y3);
    }
    _mm512_storeu_ps(y + i, y0);
    _mm512_storeu_ps(y + i + 16, y1);
    _mm512_storeu_ps(y + i + 32, y2);
    _mm512_storeu_ps(y + i + 48, y3);
  }
  for (; i < n; i += 16) {
    const __mmask16 mk = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1u);
    __m512 y0 = _mm512_maskz_loadu_ps(mk, y + i);
    const uint8_t* vr = v;
    for (int64_t r = 0; r < rows; ++r, vr += ldv_bytes) {
      y0 = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), W::load_mask(vr, i, mk), y0);
    }
    _mm512_mask_storeu_ps(y + i, mk, y0);
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

const KernelTable kTable = {"avx512", matmul<WF32>, matmul<WF16>, matmul<WBF16>, matmul<WE4M3>, dot, axpy,
                            axpy_w<WF16>, axpy_w<WBF16>, axpy_rows, exp_sum_avx2, silu_mul_avx2, &kQuantKernelTableAvx2};

}  // namespace

// With AVX512_VNNI, the quantized kernels' W8A8 product uses vpdpbusd (quant_avx512.cpp).
const KernelTable& kernel_table_avx512() {
  static const KernelTable table = [] {
    KernelTable t = kTable;
    if (cpu_features().avx512_vnni) {
      t.quant = cpu_features().avx512_vbmi ? &quant_kernel_table_avx512_vbmi() : &quant_kernel_table_avx512_vnni();
    }
    return t;
  }();
  return table;
}

}  // namespace tidal
