// AVX-512 VNNI quantized-weight kernels (F + BW + VL + DQ + VNNI). Compiled alone with those flags;
// same ODR rule as avx512.cpp: everything in an anonymous namespace, intrinsics and plain data only.
//
// The table (used by the avx512 KernelTable when the CPU has AVX512_VNNI, kernel_table_avx512()):
// - W8A8 (int8 x int8): the 512-bit kernel below.
// - W8A16 int8 and FP8 (E4M3 / E5M2) weights with F32 activations: the 512-bit tile below.
// - W4A8 (NVFP4 / MXFP4 weights x int8 activations) and W4A16 (the same weights x F32
//   activations): the 512-bit kernels below.
// - Every other entry (activation quantization): the AVX2 kernels of
//   quant_avx2.cpp, compiled again here (TIDAL_QUANT_VNNI only names its table). That file also
//   provides the shared helpers used below (f32_scale, ScratchI8, fp4_rows, fp4_tail). Everything
//   in it is in an anonymous namespace, so this copy is private to this translation unit. Its int8
//   products (W8A8, W4A8) are all overridden by the 512-bit kernels.
// - Compiled a second time as quant_avx512_vbmi.cpp (TIDAL_QUANT_AVX512_VBMI, AVX512-VBMI flags):
//   the same table except the FP4 code decode (vpermb); the avx512 KernelTable uses that one on
//   CPUs with VBMI.
#define TIDAL_QUANT_VNNI 1
#include "quant_avx2.cpp"  // NOLINT(bugprone-suspicious-include)

#include <immintrin.h>

#include <cstdint>
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
  for (int b = 0; b < NT; ++b) wr[b] = reinterpret_cast<const int8_t*>(w.data + (j + b) * w.data_stride);
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
  if constexpr (MT == 4 && NT == 4) {
    // NOTE: named accumulators: with the array (and the step lambda), GCC 12 copied every
    // accumulator between registers each step and spilled two; written out, they stay put.
#define TIDAL_W8A8_ROW(a)                                                \
  {                                                                      \
    const __m512i xv = _mm512_loadu_si512(xq + (a) * ldq + kk);          \
    c##a##0 = _mm512_dpbusd_epi32(c##a##0, w0, xv);                      \
    c##a##1 = _mm512_dpbusd_epi32(c##a##1, w1, xv);                      \
    c##a##2 = _mm512_dpbusd_epi32(c##a##2, w2, xv);                      \
    c##a##3 = _mm512_dpbusd_epi32(c##a##3, w3, xv);                      \
  }
    __m512i c00 = acc[0][0][0], c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    for (; kk + kStep <= k; kk += kStep) {
      for (int b = 0; b < NT; ++b) _mm_prefetch(reinterpret_cast<const char*>(wr[b] + kk + kPrefetchBytes), _MM_HINT_T0);
      const __m512i w0 = _mm512_xor_si512(_mm512_loadu_si512(wr[0] + kk), flip);
      const __m512i w1 = _mm512_xor_si512(_mm512_loadu_si512(wr[1] + kk), flip);
      const __m512i w2 = _mm512_xor_si512(_mm512_loadu_si512(wr[2] + kk), flip);
      const __m512i w3 = _mm512_xor_si512(_mm512_loadu_si512(wr[3] + kk), flip);
      TIDAL_W8A8_ROW(0)
      TIDAL_W8A8_ROW(1)
      TIDAL_W8A8_ROW(2)
      TIDAL_W8A8_ROW(3)
    }
#undef TIDAL_W8A8_ROW
    const __m512i named[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}};
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) acc[0][a][b] = named[a][b];
  } else {
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
  }
  for (; kk < k; kk += kStep) {  // the rest: whole steps, then one zero-padded (x = 0 there)
    const int64_t n = k - kk < kStep ? k - kk : kStep;
    __m512i wv[NT], xv[MT];
    for (int b = 0; b < NT; ++b) wv[b] = _mm512_xor_si512(load_tail(wr[b] + kk, n), flip);
    for (int a = 0; a < MT; ++a) xv[a] = n == kStep ? _mm512_loadu_si512(xq + a * ldq + kk) : load_tail(xq + a * ldq + kk, n);
    step(0, wv, xv);
  }
  if constexpr (MT == 4 && NT == 4) {
    // The 16 sums at once (a transposing reduction, ~45 instructions instead of 16 full reductions:
    // a third of the tile's work at n_in = 768); element 4a + b of `r` is output (a, b). The same
    // integers and then the same float operations per element as the scalar epilogue below.
    __m512i u[4];
    for (int h = 0; h < 4; ++h) {
      __m512i p[2];
      for (int e = 0; e < 2; ++e) {
        const __m512i v0 = acc[0][h][2 * e], v1 = acc[0][h][2 * e + 1];
        p[e] = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
      }
      u[h] = _mm512_add_epi32(_mm512_unpacklo_epi64(p[0], p[1]), _mm512_unpackhi_epi64(p[0], p[1]));
    }
    const __m512i w01 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x44), _mm512_shuffle_i32x4(u[0], u[1], 0xee));
    const __m512i w23 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], 0x44), _mm512_shuffle_i32x4(u[2], u[3], 0xee));
    const __m512i r = _mm512_add_epi32(_mm512_shuffle_i32x4(w01, w23, 0x88), _mm512_shuffle_i32x4(w01, w23, 0xdd));
    // Per element 4a + b: 128 xsum[a], xs[a] and the row scale of j + b (4 consecutive floats:
    // int8_activation_kernel only picks this for canonical per-channel scales, scale_stride 1).
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i ia = _mm512_srli_epi32(lane, 2), ib = _mm512_and_si512(lane, _mm512_set1_epi32(3));
    const __m512i corr = _mm512_slli_epi32(
        _mm512_permutexvar_epi32(ia, _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xsum)))), 7);
    const __m512 xsv = _mm512_permutexvar_ps(ia, _mm512_castps128_ps512(_mm_loadu_ps(xs)));
    const __m512 wsv = _mm512_permutexvar_ps(
        ib, _mm512_castps128_ps512(_mm_loadu_ps(reinterpret_cast<const float*>(w.scales) + j)));
    const __m512 res = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(r, corr)), xsv), wsv);
    _mm_storeu_ps(y, _mm512_castps512_ps128(res));
    _mm_storeu_ps(y + ldy, _mm512_extractf32x4_ps(res, 1));
    _mm_storeu_ps(y + 2 * ldy, _mm512_extractf32x4_ps(res, 2));
    _mm_storeu_ps(y + 3 * ldy, _mm512_extractf32x4_ps(res, 3));
    return;
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

// ---- W8A16 int8 and FP8 weights with F32 activations: 16 codes per step ----
// The AVX2 tile (quant_avx2.cpp: decode codes to F32 in registers, FMA with x, one accumulator per
// output, the row's scale on the final sum when the row has one block) at 16 lanes, with masked
// loads for the k tail and the next tile's rows prefetched (decode streams them from DRAM).
struct Int8Z {
  template <bool kScale>
  static __m512 decode(__m128i codes, __m512 mult) {
    const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(codes));
    return kScale ? _mm512_mul_ps(v, mult) : v;
  }
};
template <int kShift, uint32_t kMask, uint32_t kPow2Bits>
struct Fp8Z {  // bit placement as Fp8 in quant_avx2.cpp
  template <bool kScale>
  static __m512 decode(__m128i codes, __m512 mult) {
    const __m512i b = _mm512_and_si512(_mm512_slli_epi32(_mm512_cvtepi8_epi32(codes), kShift),
                                       _mm512_set1_epi32(int(kMask)));
    const __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(b), _mm512_castsi512_ps(_mm512_set1_epi32(int(kPow2Bits))));
    return kScale ? _mm512_mul_ps(v, mult) : v;
  }
};
using E4M3Z = Fp8Z<20, 0x87f00000u, uint32_t(127 + 120) << 23>;
using E5M2Z = Fp8Z<21, 0x8fe00000u, uint32_t(127 + 112) << 23>;

template <class F, int MT, int NT, bool kOneBlock>
inline void tile_w8(const float* x, int64_t ldx, const QuantView& w, int64_t j, float* y, int64_t ldy) {
  const QuantLayout& l = w.layout;
  const int64_t k = l.n_in, bc = l.block_cols;
  const uint8_t* wr[NT];
  int64_t srow[NT];
  for (int b = 0; b < NT; ++b) {
    wr[b] = w.data + (j + b) * w.data_stride;
    srow[b] = ((j + b) / l.block_rows) * w.scale_stride;
  }
  __m512 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_setzero_ps();
  for (int64_t kb = 0, cb = 0; kb < k; kb += bc, ++cb) {
    const int64_t ke = kb + bc < k ? kb + bc : k;
    __m512 mult[NT];
    for (int b = 0; b < NT; ++b) mult[b] = _mm512_set1_ps(f32_scale(w, srow[b] + cb));
    for (int64_t kk = kb; kk < ke; kk += 16) {
      // The k tail (only in the last block: block_cols is n_in or a multiple of 16): masked loads,
      // zeros beyond it, the same instructions as a full step.
      const __mmask16 mk = ke - kk >= 16 ? __mmask16(0xffff) : __mmask16((1u << (ke - kk)) - 1u);
      if (kk % 64 == 0) {
        for (int b = 0; b < NT; ++b)
          _mm_prefetch(reinterpret_cast<const char*>(wr[b] + NT * w.data_stride + kk), _MM_HINT_T0);
      }
      __m512 wv[NT];
      for (int b = 0; b < NT; ++b) wv[b] = F::template decode<!kOneBlock>(_mm_maskz_loadu_epi8(mk, wr[b] + kk), mult[b]);
      for (int a = 0; a < MT; ++a) {
        const __m512 xv = _mm512_maskz_loadu_ps(mk, x + a * ldx + kk);
        for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_fmadd_ps(xv, wv[b], acc[a][b]);
      }
    }
  }
  for (int a = 0; a < MT; ++a) {
    for (int b = 0; b < NT; ++b) {
      y[a * ldy + b] = kOneBlock ? _mm512_reduce_add_ps(acc[a][b]) * f32_scale(w, srow[b])
                                 : _mm512_reduce_add_ps(acc[a][b]);
    }
  }
}

template <class F, int NT, bool kOneBlock>
inline void rows_w8(const float* x, int64_t ldx, const QuantView& w, int64_t j, float* y, int64_t ldy, int64_t m) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) tile_w8<F, 4, NT, kOneBlock>(x + i * ldx, ldx, w, j, y + i * ldy, ldy);
  for (; i < m; ++i) tile_w8<F, 1, NT, kOneBlock>(x + i * ldx, ldx, w, j, y + i * ldy, ldy);
}

template <class F, bool kOneBlock>
void cols_w8(const float* xb, int64_t ldx, const QuantView& w, float* yb, int64_t ldy, int64_t mb, int64_t j0,
             int64_t j1) {
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) rows_w8<F, 4, kOneBlock>(xb, ldx, w, j, yb + j, ldy, mb);
  for (; j < j1; ++j) rows_w8<F, 1, kOneBlock>(xb, ldx, w, j, yb + j, ldy, mb);
}

template <class F>
void matmul_w8(const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m, int64_t j0,
               int64_t j1) {
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = m - i0 < kRowBlock ? m - i0 : kRowBlock;
    if (w.layout.n_scale_cols == 1) {
      cols_w8<F, true>(x + i0 * ldx, ldx, w, y + i0 * ldy, ldy, mb, j0, j1);
    } else {
      cols_w8<F, false>(x + i0 * ldx, ldx, w, y + i0 * ldy, ldy, mb, j0, j1);
    }
  }
}

// ---- FP4 weights x int8 activations (NVFP4 / MXFP4 "W4A8"): 128 codes per step ----
//
// NOTE: vpdpbusd wants one unsigned operand and AVX-512 has no vpsignb, so the weights are decoded
// to u = 2 v + 12, an unsigned byte in [0, 24] (v the E2M1 value: 2 v is an exact integer in
// {0, +-1, +-2, +-3, +-4, +-6, +-8, +-12}); sum u x = sum 2 v x + 12 sum x. The second term is
// per activation row and 16 columns: permute_xq_fp4_z stores it negated next to x, once per call,
// and it is added to the 16-column sums (pair_sums below), which then come out as sum 2 v x.
// A step decodes 64 code bytes (128 elements) with two 256-bit loads, two ANDs, one shift and two
// in-lane vpshufb (the VBMI build: one shift and two vpermb): the low nibbles (even elements 0, 2,
// ..., 126) in one zmm, the high nibbles (odd elements) in another. x is permuted once per call into the same two halves, so two vpdpbusd
// leave in int32 lane L the sum over elements 8L .. 8L + 7: all in NVFP4 block L / 2 or MXFP4
// block L / 4 of the step. These are added, still in integers, into one vector of 16 block sums per
// group of 16 blocks (pair_sums below); it is converted once and multiplied by the group's 16
// scales, decoded in one vector (as NvFp4::mult / MxFp4::mult, bit for bit) in the matching order,
// with one FMA into the accumulator; y = reduce(acc) * (x_scale * 0.5). Every output sees the same
// sequence for any m, tile or column range (batch invariance); the block sums are exact, so the
// result differs from the AVX2 table's only in F32 summation order.
constexpr int64_t kFp4Step = 128;  // columns per step
constexpr int64_t kFp4PrefetchBytes = 8192;  // software prefetch distance in the code bytes

inline void decode_fp4_u8_128(const uint8_t* p, __m512i& lo, __m512i& hi) {
  const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
  const __m512i m = _mm512_set1_epi8(0x0f);
  // NOTE: two 256-bit loads, not one 512-bit load: on the development machine (Zen 5) a decode
  // step streams its weights from DRAM ~3-4% faster so (in-process A/B, bench/kernel_ab), and a
  // plain read of the same bytes with 256-bit loads is faster still than with 512-bit ones.
  const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)), 1);
#if defined(TIDAL_QUANT_AVX512_VBMI)
  // vpermb reads the low 6 bits of each index byte and the LUT repeats every 16 bytes, so the
  // nibble above needs no mask: 3 ops instead of 5 (mxfp4:a8 decode step +7-8%, nvfp4:a8 0%).
  (void)m;
  lo = _mm512_permutexvar_epi8(v, lut);
  hi = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), lut);
#else
  lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m));
  hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), m));
#endif
}

// x row (int8, natural order) -> kp bytes in the order of decode_fp4_u8_128 (zero-padded; kp a
// multiple of the group width), then kp / 16 int32: -12 x the sum of each 16 columns, per pair of
// steps (256 columns) in the order of pair_sums: element 4p + e <- columns 32p + 16e (e < 2) or
// 128 + 32p + 16(e - 2) (e >= 2) of the pair.
inline void permute_xq_fp4_z(const int8_t* x, int64_t k, int64_t kp, int8_t* out) {
  int32_t* corr = reinterpret_cast<int32_t*>(out + kp);
  // In each 128-bit lane: its 8 even bytes to the low qword, its 8 odd bytes to the high one.
  const __m512i split = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
  const __m512i even_q = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), odd_q = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i f[2][2];  // per step of the pair and 64-column half: the sums of 4 consecutive values
  for (int64_t c = 0; c < kp; c += kFp4Step) {
    const int t = int(c / kFp4Step) & 1;
    __m512i v[2];
    for (int h = 0; h < 2; ++h) {  // x[c + 64h ..], zeros past k
      const int64_t n = k - (c + 64 * h);
      v[h] = n >= 64 ? _mm512_loadu_si512(x + c + 64 * h)
                     : n > 0 ? _mm512_maskz_loadu_epi8(__mmask64((~0ull) >> (64 - n)), x + c + 64 * h)
                             : _mm512_setzero_si512();
      f[t][h] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, v[h]);
    }
    const __m512i s0 = _mm512_shuffle_epi8(v[0], split), s1 = _mm512_shuffle_epi8(v[1], split);
    _mm512_storeu_si512(out + c, _mm512_permutex2var_epi64(s0, even_q, s1));
    _mm512_storeu_si512(out + c + 64, _mm512_permutex2var_epi64(s0, odd_q, s1));
    if (t == 1) {
      // 4-sums -> 16-sums: int32 lane l of half h sums columns 4l .. 4l + 3 of that half, so the
      // 16-column sum j (of the step's 8) is lanes 4(j % 4) .. 4(j % 4) + 3 of half j / 4.
      alignas(64) int32_t q4[2][2][16];
      for (int st = 0; st < 2; ++st)
        for (int h = 0; h < 2; ++h) _mm512_store_si512(q4[st][h], f[st][h]);
      int32_t* cg = corr + (c - kFp4Step) / 16;
      for (int p = 0; p < 4; ++p)
        for (int e = 0; e < 4; ++e) {
          const int st = e / 2, j = 2 * p + (e & 1), h = j / 4, l = 4 * (j % 4);
          cg[4 * p + e] = -12 * (q4[st][h][l] + q4[st][h][l + 1] + q4[st][h][l + 2] + q4[st][h][l + 3]);
        }
    }
  }
}

// 16 NVFP4 scale codes (E4M3), times the global scale, as NvFp4::mult bit for bit.
inline __m512 decode_nvfp4_scales(__m128i codes, __m512 global) {
  const __m512i q = _mm512_cvtepi8_epi32(codes);
  const __m512i b = _mm512_and_si512(_mm512_slli_epi32(q, 20), _mm512_set1_epi32(int(0x87f00000u)));
  const __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(b), _mm512_castsi512_ps(_mm512_set1_epi32(int((127u + 120u) << 23))));
  return _mm512_mul_ps(v, global);
}

// 16 E8M0 scale codes (one per int32 lane) as MxFp4::mult bit for bit: 2^(e - 127), code 0 -> 2^-127.
inline __m512 e8m0_scales(__m512i e) {
  return _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()),
                                                     _mm512_slli_epi32(e, 23), _mm512_set1_epi32(0x00400000)));
}

// 16 MXFP4 scale codes at s, in order.
inline __m512 decode_mxfp4_scales(const uint8_t* s) {
  return e8m0_scales(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s))));
}

// Prefetch the line `offset` bytes past p into L2 (T1), one prefetch per 64-byte line of codes.
// NOTE: into L2 rather than L1: at m = 1 a thread needs ~25 GB/s from DRAM, and the L1 has too few
// miss buffers to keep 8 KiB of prefetches in flight beside the demand loads; with T1 the 1B model's
// decode step ran +3% (slow memory phase) to +12% (fast phase) nvfp4:a8 in an in-process A/B, and
// dropping every other prefetch cost 13% (the hardware prefetcher alone does not keep up).
// The address is formed as an integer: past the end of a row it may lie outside the weights (or,
// for the k tail, outside the stack buffer the codes were copied to), which a prefetch tolerates
// but pointer arithmetic would not.
inline void prefetch_ahead(const uint8_t* p, int64_t offset) {
  _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(offset)), _MM_HINT_T1);
}

// Columns per group (16 scale blocks) and steps per group.
template <int kBlock>
constexpr int64_t kFp4Group = 16 * kBlock;
template <int kBlock>
constexpr int kFp4GroupSteps = int(16 * kBlock / kFp4Step);

// NVFP4: the scale of each int32 lane in step q of a group: lane L -> block 8q + L / 2.
inline __m512i nvfp4_scale_index(int q) {
  const __m512i l = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_add_epi32(_mm512_srli_epi32(l, 1), _mm512_set1_epi32(8 * q));
}

// MXFP4 in the lane order of the W4A16 kernel below: int32 lane L of step q -> block 4q + L / 4.
inline __m512i mxfp4_scale_index(int q) {
  const __m512i l = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_add_epi32(_mm512_srli_epi32(l, 2), _mm512_set1_epi32(4 * q));
}

// Block sums without converting every step. The int32 lane sums of u x (8 products, u <= 24,
// |x| <= 128) are at most 24576 in magnitude: they fit int16. vpackssdw of two steps' lane sums
// (exact: nothing saturates) followed by vpmaddwd by ones adds neighbouring lanes: in each 128-bit
// lane, [a0 + a1, a2 + a3, b0 + b1, b2 + b3] from a = [a0..a3] and b = [b0..b3]. Two ops per pair
// of steps, instead of a conversion and a multiply per step. Adding the corrections then leaves
// 16-column sums of 2 v x, |sum| <= 16 x 12 x 128 = 24576: int16 again, so MXFP4 pairs them once
// more.
inline __m512i pair_sums(__m512i a, __m512i b) {
  return _mm512_madd_epi16(_mm512_packs_epi32(a, b), _mm512_set1_epi16(1));
}

// One step's int32 lane sums of u x (|sum| <= 8 x 24 x 128 = 24576: int16 still).
inline __m512i fp4_step_sums(const __m512i& wl, const __m512i& xl, const __m512i& wh, const __m512i& xh) {
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wl, xl), wh, xh);
}

// pair_sums of two steps' sums of u x plus the pair's corrections at c: the 16-column sums of 2 v x.
inline __m512i fp4_pair_sums(__m512i p0, __m512i p1, const int8_t* c) {
  return _mm512_add_epi32(pair_sums(p0, p1), _mm512_loadu_si512(c));
}

// MXFP4 (32-column blocks): in step q, 128-bit lane p (int32 lanes 4p..4p+3) holds exactly block
// 4q + p of the group, so the scale can wait: fp4_pair_sums of steps (0, 1) and of steps (2, 3),
// then pair_sums of those two, leave in element 4p + q block 4q + p's exact sum (|sum| <= 49152 in
// int32: the last vpmaddwd adds two int16). It is converted once and multiplied by the group's 16
// scales (loaded in that transposed order): one conversion and one FMA per 512 columns. A tail
// group's missing steps contribute integer zeros, so every group takes the same float steps.
template <int MT, int NT, int kSteps>
inline void group_mxfp4_i8(const int8_t* xg, const int8_t* cg, int64_t ldxp, const uint8_t* const* wg,
                           const uint8_t* const* sg, __m512 (&acc)[MT][NT]) {
  const __m128i transpose = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m512i first[MT][NT];  // steps 0 and 1: their pair sums, kept until steps 2 and 3 have theirs
  __m512 sv[NT];
  for (int h = 0; h < 2; ++h) {
    const int q = 2 * h;
    __m512i w0l[NT], w0h[NT], w1l[NT], w1h[NT];
    for (int b = 0; b < NT; ++b) {
      for (int r = 0; r < 2; ++r)
        if (q + r < kSteps) prefetch_ahead(wg[b], 64 * (q + r) + kFp4PrefetchBytes);
      if (q < kSteps) decode_fp4_u8_128(wg[b] + 64 * q, w0l[b], w0h[b]);
      if (q + 1 < kSteps) decode_fp4_u8_128(wg[b] + 64 * (q + 1), w1l[b], w1h[b]);
      if (h == 1) {
        const __m128i codes = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sg[b])), transpose);
        sv[b] = e8m0_scales(_mm512_cvtepu8_epi32(codes));
      }
    }
    for (int a = 0; a < MT; ++a) {
      const int8_t* xa = xg + a * ldxp + kFp4Step * q;
      const int8_t* ca = cg + a * ldxp + 64 * h;
      for (int b = 0; b < NT; ++b) {
        __m512i p0 = _mm512_setzero_si512(), p1 = _mm512_setzero_si512();
        if (q < kSteps) p0 = fp4_step_sums(w0l[b], _mm512_loadu_si512(xa), w0h[b], _mm512_loadu_si512(xa + 64));
        if (q + 1 < kSteps) {
          p1 = fp4_step_sums(w1l[b], _mm512_loadu_si512(xa + 128), w1h[b], _mm512_loadu_si512(xa + 192));
        }
        // (a pair past the tail has zero corrections too: x is zero-padded to the group)
        const __m512i sums = fp4_pair_sums(p0, p1, ca);
        if (h == 0) {
          first[a][b] = sums;
        } else {
          acc[a][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pair_sums(first[a][b], sums)), sv[b], acc[a][b]);
        }
      }
    }
  }
}

// NVFP4 (16-column blocks, 2 steps per group): in step q, 128-bit lane p holds blocks 8q + 2p (int32
// lanes 4p, 4p + 1) and 8q + 2p + 1 (lanes 4p + 2, 4p + 3). pair_sums of the group's two steps
// leaves in element 4p + e the sum of block 2p, 2p + 1, 8 + 2p, 9 + 2p for e = 0..3: converted once
// and multiplied by the group's 16 scales, loaded in that order.
template <int MT, int NT, int kSteps>
inline void group_nvfp4_i8(const int8_t* xg, const int8_t* cg, int64_t ldxp, const uint8_t* const* wg,
                           const uint8_t* const* sg, __m512 global, __m512 (&acc)[MT][NT]) {
  static_assert(kSteps == 1 || kSteps == 2, "an NVFP4 group is two steps");
  const __m128i order = _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
  constexpr bool two = kSteps == 2;
  __m512i w0l[NT], w0h[NT], w1l[NT], w1h[NT];
  __m512 sv[NT];
  for (int b = 0; b < NT; ++b) {
    for (int r = 0; r < kSteps; ++r) prefetch_ahead(wg[b], 64 * r + kFp4PrefetchBytes);
    decode_fp4_u8_128(wg[b], w0l[b], w0h[b]);
    if (two) decode_fp4_u8_128(wg[b] + 64, w1l[b], w1h[b]);
    sv[b] = decode_nvfp4_scales(_mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sg[b])), order),
                                global);
  }
  for (int a = 0; a < MT; ++a) {
    const int8_t* xa = xg + a * ldxp;
    const int8_t* ca = cg + a * ldxp;
    const __m512i x0l = _mm512_loadu_si512(xa), x0h = _mm512_loadu_si512(xa + 64);
    __m512i x1l = x0l, x1h = x0h;
    if (two) {
      x1l = _mm512_loadu_si512(xa + 128);
      x1h = _mm512_loadu_si512(xa + 192);
    }
    for (int b = 0; b < NT; ++b) {
      const __m512i p0 = fp4_step_sums(w0l[b], x0l, w0h[b], x0h);
      const __m512i p1 = two ? fp4_step_sums(w1l[b], x1l, w1h[b], x1h) : _mm512_setzero_si512();
      acc[a][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(fp4_pair_sums(p0, p1, ca)), sv[b], acc[a][b]);
    }
  }
}

// One group of kSteps steps: codes at wg[b] (64 bytes per step), 16 scale codes at sg[b], x at xg
// (128 per step) and its corrections at cg (64 bytes per pair of steps); x row a at + a ldxp.
template <int kBlock, int MT, int NT, int kSteps>
inline void group_fp4_i8(const int8_t* xg, const int8_t* cg, int64_t ldxp, const uint8_t* const* wg,
                         const uint8_t* const* sg, __m512 global, __m512 (&acc)[MT][NT]) {
  if constexpr (kBlock == 32) {
    group_mxfp4_i8<MT, NT, kSteps>(xg, cg, ldxp, wg, sg, acc);
  } else {
    group_nvfp4_i8<MT, NT, kSteps>(xg, cg, ldxp, wg, sg, global, acc);
  }
}

template <int kBlock, int MT, int NT>
inline void tile_fp4_i8(const int8_t* xp, int64_t ldxp, int64_t kp, const float* xs, const QuantView& w, int64_t j,
                        float* y, int64_t ldy) {
  constexpr int64_t kGroup = kFp4Group<kBlock>;
  constexpr int kSteps = kFp4GroupSteps<kBlock>;
  const QuantLayout& l = w.layout;
  const int64_t k = l.n_in;
  const __m512 global = _mm512_set1_ps(w.global_scale);
  const uint8_t* wr[NT];
  const uint8_t* sr[NT];
  fp4_rows<NT>(w, j, wr, sr);
  __m512 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm512_setzero_ps();
  // Pointers advance group by group (x, its corrections, each row's codes and scale codes): no
  // per-group offset arithmetic in the loop, which at m = 1 is most of what runs beside the vector work.
  const uint8_t* wg[NT];
  const uint8_t* sg[NT];
  for (int b = 0; b < NT; ++b) {
    wg[b] = wr[b];
    sg[b] = sr[b];
  }
  const int8_t* xg = xp;
  const int8_t* cg = xp + kp;  // corrections: kp / 16 int32 after x, 64 bytes per 256 columns
  const int64_t n_groups = k / kGroup;
  for (int64_t g = 0; g < n_groups; ++g) {
    group_fp4_i8<kBlock, MT, NT, kSteps>(xg, cg, ldxp, wg, sg, global, acc);
    xg += kGroup;
    cg += kGroup / 4;
    for (int b = 0; b < NT; ++b) {
      wg[b] += kGroup / 2;
      sg[b] += kGroup / kBlock;
    }
  }
  const int64_t kk = n_groups * kGroup;
  if (kk < k) {  // the k tail: codes and scale codes zero-padded (x is zero-padded to the group)
    alignas(64) uint8_t wbuf[NT][kGroup / 2];
    alignas(16) uint8_t sbuf[NT][16];
    fp4_tail(l, NT, kk, kBlock, wr, sr, wbuf[0], sizeof(wbuf[0]), sbuf[0], sizeof(sbuf[0]), wg, sg);
    // (an NVFP4 tail has 1 or 2 steps: cases 3 and 4 never run for it, and are not instantiated)
    switch ((k - kk + kFp4Step - 1) / kFp4Step) {
      case 1: group_fp4_i8<kBlock, MT, NT, 1>(xg, cg, ldxp, wg, sg, global, acc); break;
      case 2: group_fp4_i8<kBlock, MT, NT, 2>(xg, cg, ldxp, wg, sg, global, acc); break;
      case 3: group_fp4_i8<kBlock, MT, NT, (kSteps < 3 ? kSteps : 3)>(xg, cg, ldxp, wg, sg, global, acc); break;
      default: group_fp4_i8<kBlock, MT, NT, kSteps>(xg, cg, ldxp, wg, sg, global, acc); break;
    }
  }
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) y[a * ldy + b] = _mm512_reduce_add_ps(acc[a][b]) * (xs[a] * 0.5f);
}

template <int kBlock, int NT>
inline void rows_fp4_i8(const int8_t* xp, int64_t ldxp, int64_t kp, const float* xs, const QuantView& w, int64_t j,
                        float* y, int64_t ldy, int64_t m) {
  int64_t i = 0;
  // MXFP4 keeps its first half-group's pair sums live across the second half, which folds them
  // into the accumulators as it makes its own: 4 x 2 tiles fit (the 6 x 2 of NVFP4 would spill).
  // NVFP4 with two weight rows: 6 x rows (12 accumulators, 8 decoded code vectors, 2 scale
  // vectors, 4 x vectors, 2 step sums: 28 of 32 registers) share each decode among more products.
  constexpr int kMt = kBlock == 32 ? (NT == 2 ? 4 : 3) : NT == 2 ? 6 : 4;  // (NT = 1: m = 1, or a last odd row)
  for (; i + kMt <= m; i += kMt) tile_fp4_i8<kBlock, kMt, NT>(xp + i * ldxp, ldxp, kp, xs + i, w, j, y + i * ldy, ldy);
  if constexpr (kMt > 4) {
    for (; i + 4 <= m; i += 4) tile_fp4_i8<kBlock, 4, NT>(xp + i * ldxp, ldxp, kp, xs + i, w, j, y + i * ldy, ldy);
  }
  for (; i < m; ++i) tile_fp4_i8<kBlock, 1, NT>(xp + i * ldxp, ldxp, kp, xs + i, w, j, y + i * ldy, ldy);
}

// The W4A8 activation layout (QuantKernelTable::prepare_fp4_i8): each row permuted by
// permute_xq_fp4_z to a whole number of MXFP4 groups (hence NVFP4 groups too: one layout serves
// both), then its lane corrections.
inline int64_t fp4_i8_padded_k(int64_t k) { return (k + kFp4Group<32> - 1) / kFp4Group<32> * kFp4Group<32>; }

int64_t fp4_i8_row_bytes(int64_t k) {
  const int64_t kp = fp4_i8_padded_k(k);
  return kp + kp / 4;  // x, then kp / 16 int32 corrections
}

void prepare_fp4_i8(const int8_t* xq, int64_t ldq, int64_t m, int64_t k, int8_t* xp) {
  const int64_t kp = fp4_i8_padded_k(k), ldxp = fp4_i8_row_bytes(k);
  for (int64_t i = 0; i < m; ++i) permute_xq_fp4_z(xq + i * ldq, k, kp, xp + i * ldxp);
}

template <int kBlock>
void matmul_fp4_i8_prepared(const int8_t* xp, int64_t ldxp, const float* xs, const QuantView& w, float* y,
                            int64_t ldy, int64_t m, int64_t j0, int64_t j1) {
  const int64_t kp = fp4_i8_padded_k(w.layout.n_in);
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = m - i0 < kRowBlock ? m - i0 : kRowBlock;
    const int8_t* xb = xp + i0 * ldxp;
    int64_t j = j0;
    // m = 1 (decode): one weight row at a time, one sequential stream per thread (as the AVX2 table).
    if (mb > 1) {
      for (; j + 2 <= j1; j += 2) rows_fp4_i8<kBlock, 2>(xb, ldxp, kp, xs + i0, w, j, y + i0 * ldy + j, ldy, mb);
    }
    for (; j < j1; ++j) rows_fp4_i8<kBlock, 1>(xb, ldxp, kp, xs + i0, w, j, y + i0 * ldy + j, ldy, mb);
  }
}

template <int kBlock>
constexpr MatmulI8I8Fn matmul_fp4_i8 =
    matmul_i8_via_prepared<kRowBlock, fp4_i8_row_bytes, prepare_fp4_i8, matmul_fp4_i8_prepared<kBlock>>;

// ---- FP4 weights x F32 activations (NVFP4 / MXFP4 "W4A16"): 128 codes per step ----
//
// NOTE: vpermps picks one of 16 F32 values by the low 4 bits of each int32 index and ignores the
// rest, and an E2M1 code is 4 bits, so the 16 E2M1 values in one zmm are the whole decoder. A step
// loads 64 code bytes as 16 int32 lanes: lane d holds the codes of elements 8d .. 8d + 7 (byte b:
// element 2b in its low nibble, 2b + 1 in its high one), so a shift by 4s and one vpermps give
// the vector of elements 8d + s over all d: 8 vectors per step from 7 shifts and 8 vpermps, with no
// masking or widening. x is permuted once per call into the same order (in each 128-column step,
// xp[16 s + d] = x[8 d + s]). A lane's 8 products all lie in one scale block (NVFP4 block d / 2,
// MXFP4 block d / 4 of the step), so they are summed unscaled, in two chains (even s, odd s), and
// scaled once per step: acc = fma(t, scale, acc), the per-lane scale spread from the group's 16
// decoded scales (as NvFp4::mult / MxFp4::mult, bit for bit) by one vpermps. Every output sees the
// same sequence for any m, tile or column range (batch invariance).
constexpr int64_t kFp4F32RowBlock = 32;  // x rows per pass (F32: 32 x n_in x 4 bytes stay in L2)

inline __m512 fp4_e2m1_values() {
  return _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f,
                        -4.0f, -6.0f);
}

// x row (F32, natural order) -> kp floats in the step order above (zero past k; kp a multiple of
// the step).
inline void permute_x_fp4_z(const float* x, int64_t k, int64_t kp, float* out) {
  const __m512i d8 = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
  alignas(64) float tail[kFp4Step];
  for (int64_t c = 0; c < kp; c += kFp4Step) {
    const float* src = x + c;
    if (c + kFp4Step > k) {  // the last partial step: gather from a zero-padded copy
      std::memset(tail, 0, sizeof(tail));
      if (k > c) std::memcpy(tail, x + c, size_t(k - c) * sizeof(float));
      src = tail;
    }
    for (int s = 0; s < 8; ++s)
      _mm512_storeu_ps(out + c + 16 * s, _mm512_i32gather_ps(_mm512_add_epi32(d8, _mm512_set1_epi32(s)), src, 4));
  }
}

// One group (16 scale blocks, kSteps steps): codes at wg, scale codes at sg, x at xg.
template <int kBlock, int MT, int kSteps>
inline void group_fp4_f32(const float* xg, int64_t ldxp, const uint8_t* wg, const uint8_t* sg, __m512 global,
                          __m512 (&acc)[MT]) {
  const __m512 lut = fp4_e2m1_values();
  const __m512 sv = kBlock == 16 ? decode_nvfp4_scales(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sg)), global)
                                  : decode_mxfp4_scales(sg);
  for (int q = 0; q < kSteps; ++q) {
    prefetch_ahead(wg, 64 * q + kFp4PrefetchBytes);
    const __m512i v = _mm512_loadu_si512(wg + 64 * q);
    __m512 wv[8];
    wv[0] = _mm512_permutexvar_ps(v, lut);
    for (int s = 1; s < 8; ++s) wv[s] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * s), lut);
    const __m512 sq = _mm512_permutexvar_ps(kBlock == 16 ? nvfp4_scale_index(q) : mxfp4_scale_index(q), sv);
    for (int a = 0; a < MT; ++a) {
      const float* xa = xg + a * ldxp + kFp4Step * q;
      __m512 t0 = _mm512_mul_ps(_mm512_loadu_ps(xa), wv[0]);
      __m512 t1 = _mm512_mul_ps(_mm512_loadu_ps(xa + 16), wv[1]);
      for (int s = 2; s < 8; s += 2) {
        t0 = _mm512_fmadd_ps(_mm512_loadu_ps(xa + 16 * s), wv[s], t0);
        t1 = _mm512_fmadd_ps(_mm512_loadu_ps(xa + 16 * (s + 1)), wv[s + 1], t1);
      }
      acc[a] = _mm512_fmadd_ps(_mm512_add_ps(t0, t1), sq, acc[a]);
    }
  }
}

// y[a, 0] for the MT x rows at xp and weight row j.
template <int kBlock, int MT>
inline void tile_fp4_f32(const float* xp, int64_t ldxp, const QuantView& w, int64_t j, float* y, int64_t ldy) {
  constexpr int64_t kGroup = kFp4Group<kBlock>;
  constexpr int kSteps = kFp4GroupSteps<kBlock>;
  const QuantLayout& l = w.layout;
  const int64_t k = l.n_in;
  const __m512 global = _mm512_set1_ps(w.global_scale);
  const uint8_t* wr[1];
  const uint8_t* sr[1];
  fp4_rows<1>(w, j, wr, sr);
  __m512 acc[MT];
  for (int a = 0; a < MT; ++a) acc[a] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + kGroup <= k; kk += kGroup) {
    group_fp4_f32<kBlock, MT, kSteps>(xp + kk, ldxp, wr[0] + kk / 2, sr[0] + kk / kBlock, global, acc);
  }
  if (kk < k) {  // the k tail: codes and scale codes zero-padded (x is zero-padded to the group)
    alignas(64) uint8_t wbuf[kGroup / 2];
    alignas(16) uint8_t sbuf[16];
    const uint8_t* wg[1];
    const uint8_t* sg[1];
    fp4_tail(l, 1, kk, kBlock, wr, sr, wbuf, sizeof(wbuf), sbuf, sizeof(sbuf), wg, sg);
    switch ((k - kk + kFp4Step - 1) / kFp4Step) {
      case 1: group_fp4_f32<kBlock, MT, 1>(xp + kk, ldxp, wg[0], sg[0], global, acc); break;
      case 2: group_fp4_f32<kBlock, MT, 2>(xp + kk, ldxp, wg[0], sg[0], global, acc); break;
      // (NVFP4 groups have 2 steps: its cases 3 and 4 never run, and are not instantiated past it)
      case 3: group_fp4_f32<kBlock, MT, (kSteps < 3 ? kSteps : 3)>(xp + kk, ldxp, wg[0], sg[0], global, acc); break;
      default: group_fp4_f32<kBlock, MT, kSteps>(xp + kk, ldxp, wg[0], sg[0], global, acc); break;
    }
  }
  for (int a = 0; a < MT; ++a) y[a * ldy] = _mm512_reduce_add_ps(acc[a]);
}

template <int kBlock>
void matmul_fp4_f32(const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m, int64_t j0,
                    int64_t j1) {
  constexpr int64_t kGroup = kFp4Group<kBlock>;
  const int64_t k = w.layout.n_in, kp = (k + kGroup - 1) / kGroup * kGroup;
  thread_local Scratch scratch;
  for (int64_t i0 = 0; i0 < m; i0 += kFp4F32RowBlock) {
    const int64_t mb = m - i0 < kFp4F32RowBlock ? m - i0 : kFp4F32RowBlock;
    float* xp = scratch.get(size_t(mb * kp));
    for (int64_t i = 0; i < mb; ++i) permute_x_fp4_z(x + (i0 + i) * ldx, k, kp, xp + i * kp);
    // NOTE: 4 x rows per tile for batches (the decoded codes serve 4 rows); one weight row at a
    // time, so decode (m = 1) reads one sequential stream per thread. The tile shape never changes
    // an output's arithmetic.
    for (int64_t j = j0; j < j1; ++j) {
      float* yj = y + i0 * ldy + j;
      int64_t i = 0;
      for (; i + 4 <= mb; i += 4) tile_fp4_f32<kBlock, 4>(xp + i * kp, kp, w, j, yj + i * ldy, ldy);
      for (; i + 2 <= mb; i += 2) tile_fp4_f32<kBlock, 2>(xp + i * kp, kp, w, j, yj + i * ldy, ldy);
      for (; i < mb; ++i) tile_fp4_f32<kBlock, 1>(xp + i * kp, kp, w, j, yj + i * ldy, ldy);
    }
  }
}

}  // namespace zmm
}  // namespace

const QuantKernelTable& quant_kernel_table_avx512_vnni() {
  static const QuantKernelTable table = [] {
    QuantKernelTable t = kQuantKernelTableAvx2Vnni;
#if defined(TIDAL_QUANT_AVX512_VBMI)
    t.name = "avx512_vbmi";
#endif
    t.matmul_i8_i8 = zmm::matmul_i8_i8;
    t.matmul_int8 = zmm::matmul_w8<zmm::Int8Z>;
    t.matmul_fp8_e4m3 = zmm::matmul_w8<zmm::E4M3Z>;
    t.matmul_fp8_e5m2 = zmm::matmul_w8<zmm::E5M2Z>;
    t.matmul_nvfp4_i8 = zmm::matmul_fp4_i8<16>;
    t.matmul_mxfp4_i8 = zmm::matmul_fp4_i8<32>;
    t.fp4_i8_row_bytes = zmm::fp4_i8_row_bytes;
    t.prepare_fp4_i8 = zmm::prepare_fp4_i8;
    t.matmul_nvfp4_i8_prepared = zmm::matmul_fp4_i8_prepared<16>;
    t.matmul_mxfp4_i8_prepared = zmm::matmul_fp4_i8_prepared<32>;
    t.matmul_nvfp4 = zmm::matmul_fp4_f32<16>;
    t.matmul_mxfp4 = zmm::matmul_fp4_f32<32>;
    t.fp4_f32_interleaved = true;
    return t;
  }();
  return table;
}

}  // namespace tidal
