// AVX-512 VNNI quantized-weight kernels (F + BW + VL + DQ + VNNI). Compiled alone with those flags;
// same ODR rule as avx512.cpp: everything in an anonymous namespace, intrinsics and plain data only.
//
// The table (used by the avx512 KernelTable when the CPU has AVX512_VNNI, kernel_table_avx512()):
// - W8A8 (int8 x int8): the 512-bit kernel below.
// - Every other entry: the AVX2 kernels of quant_avx2.cpp, compiled again here with
//   TIDAL_QUANT_VNNI, which turns their int8 products (W4A8: FP4 weights x int8 activations) into
//   256-bit vpdpbusd (AVX512_VNNI + VL) instead of vpmaddubsw + vpmaddwd + vpaddd. Same integers,
//   so the same results as the AVX2 table. Everything in that file is in an anonymous namespace,
//   so the second copy is private to this translation unit.
#define TIDAL_QUANT_VNNI 1
#include "quant_avx2.cpp"  // NOLINT(bugprone-suspicious-include)

#include <immintrin.h>

#include <cstring>

#include "tidal/kernels/quant_kernel_table.h"

namespace tidal {

extern const QuantKernelTable kQuantKernelTableAvx2Vnni;  // quant_avx2.cpp, as compiled above

namespace {
namespace zmm {

// NOTE: vpdpbusd multiplies unsigned bytes by signed bytes and adds groups of 4 products to int32
// lanes (no saturation). AVX-512 has no vpsignb, so instead of AVX2's |x| * sign(w, x) the weight
// bytes are made unsigned: u = w XOR 0x80 = w + 128, and sum_c u[c] x[c] = sum_c w[c] x[c] +
// 128 sum_c x[c]. The second term is one per activation row (computed once per call) and is
// subtracted at the end. The lane sums and the final subtraction wrap modulo 2^32 (uint32
// arithmetic; |u x| sums can exceed 2^31 at n_in = 2^17), but the true result fits in int32
// (127 * 127 * 2^17 < 2^31), so it comes out exact: the same integer as every other table, hence
// the same float bits after the two scale multiplies.
constexpr int64_t kStep = 64;       // int8 values per vector
constexpr int64_t kRowBlock = 64;   // x rows per pass (64 x n_in bytes stay in L2 while W streams)
constexpr int64_t kPrefetchBytes = 1024;  // software prefetch distance in each weight row (avx512.cpp)

inline __m512i load_tail(const int8_t* p, int64_t n) {  // n in [1, 64): the rest zero
  return _mm512_maskz_loadu_epi8(__mmask64((~0ull) >> (64 - n)), p);
}

// sum_c x[c] for one row (wrapping uint32; exact here, |sum| <= 127 * 2^17).
inline uint32_t row_sum(const int8_t* x, int64_t k) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512();
  int64_t c = 0;
  for (; c + kStep <= k; c += kStep) acc = _mm512_dpbusd_epi32(acc, ones, _mm512_loadu_si512(x + c));
  if (c < k) acc = _mm512_dpbusd_epi32(acc, ones, load_tail(x + c, k - c));
  return uint32_t(_mm512_reduce_add_epi32(acc));
}

// MT x NT tile: one int32 vector accumulator per (i, j); integer sums, so any order is exact.
// m = 1 uses NT = 1 with two accumulators (even / odd steps) to keep two vpdpbusd chains going.
template <int MT, int NT>
inline void tile_i8(const int8_t* xq, int64_t ldq, const float* xs, const uint32_t* xsum, const QuantView& w,
                    int64_t j, float* y, int64_t ldy) {
  const int64_t k = w.layout.n_in;
  const int8_t* wr[NT];
  for (int b = 0; b < NT; ++b) wr[b] = reinterpret_cast<const int8_t*>(w.data + (j + b) * w.layout.row_bytes);
  const __m512i flip = _mm512_set1_epi8(int8_t(0x80));
  constexpr int kChains = (MT == 1 && NT == 1) ? 2 : 1;
  __m512i acc[kChains][MT][NT];
  for (int h = 0; h < kChains; ++h)
    for (int a = 0; a < MT; ++a)
      for (int b = 0; b < NT; ++b) acc[h][a][b] = _mm512_setzero_si512();
  auto step = [&](int h, const __m512i* wv, const __m512i* xv) {
    for (int a = 0; a < MT; ++a)
      for (int b = 0; b < NT; ++b) acc[h][a][b] = _mm512_dpbusd_epi32(acc[h][a][b], wv[b], xv[a]);
  };
  int64_t kk = 0;
  for (; kk + kChains * kStep <= k; kk += kChains * kStep) {
    for (int b = 0; b < NT; ++b)
      for (int h = 0; h < kChains; ++h) _mm_prefetch(reinterpret_cast<const char*>(wr[b] + kk + h * kStep + kPrefetchBytes), _MM_HINT_T0);
    for (int h = 0; h < kChains; ++h) {
      __m512i wv[NT], xv[MT];
      for (int b = 0; b < NT; ++b) wv[b] = _mm512_xor_si512(_mm512_loadu_si512(wr[b] + kk + h * kStep), flip);
      for (int a = 0; a < MT; ++a) xv[a] = _mm512_loadu_si512(xq + a * ldq + kk + h * kStep);
      step(h, wv, xv);
    }
  }
  for (; kk < k; kk += kStep) {  // the rest: whole steps, then one zero-padded (x = 0 there)
    const int64_t n = k - kk < kStep ? k - kk : kStep;
    __m512i wv[NT], xv[MT];
    for (int b = 0; b < NT; ++b) wv[b] = _mm512_xor_si512(load_tail(wr[b] + kk, n), flip);
    for (int a = 0; a < MT; ++a) xv[a] = n == kStep ? _mm512_loadu_si512(xq + a * ldq + kk) : load_tail(xq + a * ldq + kk, n);
    step(0, wv, xv);
  }
  for (int a = 0; a < MT; ++a) {
    for (int b = 0; b < NT; ++b) {
      __m512i s = acc[0][a][b];
      if constexpr (kChains == 2) s = _mm512_add_epi32(s, acc[1][a][b]);
      const uint32_t u = uint32_t(_mm512_reduce_add_epi32(s)) - 128u * xsum[a];
      int32_t dotp;
      std::memcpy(&dotp, &u, 4);
      y[a * ldy + b] = (float(dotp) * xs[a]) * f32_scale(w, j + b);
    }
  }
}

template <int NT>
inline void rows_i8(const int8_t* xq, int64_t ldq, const float* xs, const uint32_t* xsum, const QuantView& w,
                    int64_t j, float* y, int64_t ldy, int64_t m) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) tile_i8<4, NT>(xq + i * ldq, ldq, xs + i, xsum + i, w, j, y + i * ldy, ldy);
  for (; i < m; ++i) tile_i8<1, NT>(xq + i * ldq, ldq, xs + i, xsum + i, w, j, y + i * ldy, ldy);
}

void matmul_i8_i8(const int8_t* xq, int64_t ldq, const float* xs, const QuantView& w, float* y, int64_t ldy,
                  int64_t m, int64_t j0, int64_t j1) {
  const int64_t k = w.layout.n_in;
  uint32_t xsum[kRowBlock];
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = m - i0 < kRowBlock ? m - i0 : kRowBlock;
    for (int64_t i = 0; i < mb; ++i) xsum[i] = row_sum(xq + (i0 + i) * ldq, k);
    const int8_t* xb = xq + i0 * ldq;
    int64_t j = j0;
    // m = 1 (decode): one weight row at a time, one sequential stream per thread (as the AVX2 table).
    if (mb > 1) {
      for (; j + 4 <= j1; j += 4) rows_i8<4>(xb, ldq, xs + i0, xsum, w, j, y + i0 * ldy + j, ldy, mb);
    }
    for (; j < j1; ++j) rows_i8<1>(xb, ldq, xs + i0, xsum, w, j, y + i0 * ldy + j, ldy, mb);
  }
}

}  // namespace zmm
}  // namespace

const QuantKernelTable& quant_kernel_table_avx512_vnni() {
  static const QuantKernelTable table = [] {
    QuantKernelTable t = kQuantKernelTableAvx2Vnni;
    t.matmul_i8_i8 = zmm::matmul_i8_i8;
    return t;
  }();
  return table;
}

}  // namespace tidal
