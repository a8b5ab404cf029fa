// AVX2 + FMA quantized-weight kernels. Compiled alone with -mavx2 -mfma -mf16c; same ODR rule as
// avx2.cpp: everything in an anonymous namespace, intrinsics and plain data only (no shared inline
// helpers from core: the scale decoders below are local copies).
//
// Structure (one tile routine for every format, GEMV m = 1 and small-m GEMM alike): an MT x NT tile
// keeps one F32 vector accumulator per output element, walks k block by block (one scale per
// block), decodes F::kStep codes of each of the NT weight rows into F32 vectors multiplied by the
// block's scale, and FMAs them into the MT x NT accumulators. Every accumulator sees the same
// instruction sequence whatever MT, NT, m or the column range: batch invariance by construction.
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "tidal/kernels/quant_kernel_table.h"

namespace tidal {
namespace {

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float f32_scale(const QuantView& w, int64_t i) {
  float s;
  std::memcpy(&s, static_cast<const uint8_t*>(w.scales) + 4 * i, 4);
  return s;
}

// ---- Per-format decoders: F32 vectors of (code value * mult), mult already holding the scale ----

// NOTE: FP8 codes become F32 by bit placement: sign-extend the byte to 32 bits and shift, so the
// exponent and mantissa fields land at the bottom of the F32 exponent/mantissa fields and the sign
// (copied by the sign extension) at bit 31; one AND clears the rest. The result is the FP8 value
// times 2^-(127 - bias), subnormals included (they become F32 subnormals), which a multiply by
// 2^(127 - bias) makes exact. NaN/Inf codes decode to finite garbage: the kernel contract excludes
// them. The block scale is applied by a second multiply (folding it into 2^(127-bias) would
// overflow for scales >= 2^8).
struct Int8 {
  static constexpr int kStep = 8, kStepBytes = 8, kVecs = 1, kNt = 4, kMt = 3;
  static float mult(const QuantView& w, int64_t i) { return f32_scale(w, i); }
  template <bool kScale>
  static void decode(const uint8_t* p, __m256 mult, __m256* out) {
    const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    out[0] = kScale ? _mm256_mul_ps(_mm256_cvtepi32_ps(q), mult) : _mm256_cvtepi32_ps(q);
  }
};

template <int kShift, uint32_t kMask, uint32_t kPow2Bits>
struct Fp8 {
  static constexpr int kStep = 8, kStepBytes = 8, kVecs = 1, kNt = 4, kMt = 3;
  static float mult(const QuantView& w, int64_t i) { return f32_scale(w, i); }
  template <bool kScale>
  static void decode(const uint8_t* p, __m256 mult, __m256* out) {
    const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m256i b = _mm256_and_si256(_mm256_slli_epi32(q, kShift), _mm256_set1_epi32(int(kMask)));
    const __m256 v =
        _mm256_mul_ps(_mm256_castsi256_ps(b), _mm256_castsi256_ps(_mm256_set1_epi32(int(kPow2Bits))));
    out[0] = kScale ? _mm256_mul_ps(v, mult) : v;
  }
};
// E4M3: s.eeee.mmm -> bits 31, 26..20; x 2^120.  E5M2: s.eeeee.mm -> bits 31, 27..21; x 2^112.
using E4M3 = Fp8<20, 0x87f00000u, uint32_t(127 + 120) << 23>;
using E5M2 = Fp8<21, 0x8fe00000u, uint32_t(127 + 112) << 23>;

// FP4 E2M1 scale multipliers: scale code -> F32 (the codes are decoded by tile_fp4 below).
struct NvFp4 {
  static float mult(uint8_t code, float global_scale) {
    // E4M3 scale, decoded like the FP8 vector path above (finite codes only).
    const float s = bits_to_f32((uint32_t(int32_t(int8_t(code))) << 20) & 0x87f00000u) *
                    bits_to_f32(uint32_t(127 + 120) << 23);
    return s * global_scale;
  }
};
struct MxFp4 {
  static float mult(uint8_t e, float) {
    const float s = e == 0 ? bits_to_f32(0x00400000u) : bits_to_f32(uint32_t(e) << 23);  // 2^(e - 127)
    return s;
  }
};

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// y[a, b] for the MT rows at x and the NT weight rows starting at row j.
// kOneBlock (the row has one scale: per channel or per tensor): codes are decoded unscaled and the
// row's scale multiplies the final sum, saving one multiply per 8 weights; otherwise each block's
// decoded vectors are multiplied by its scale. Which one is fixed by the layout, never by m or the
// tiling, so batch invariance holds.
template <class F, int MT, int NT, bool kOneBlock>
inline void tile(const float* x, int64_t ldx, const QuantView& w, int64_t j, float* y, int64_t ldy) {
  const QuantLayout& l = w.layout;
  const int64_t k = l.n_in, bc = l.block_cols;
  const uint8_t* wr[NT];
  int64_t srow[NT];
  for (int b = 0; b < NT; ++b) {
    wr[b] = w.data + (j + b) * w.data_stride;
    srow[b] = ((j + b) / l.block_rows) * w.scale_stride;
  }
  __m256 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_setzero_ps();
  // One step: decode NT x kStep codes at byte offset `off`, FMA with x at column kk.
  auto step = [&](const uint8_t* const* wp, int64_t off, const float* const* xp, int64_t kk,
                  const __m256* mult) {
    __m256 wv[NT][F::kVecs];
    for (int b = 0; b < NT; ++b) F::template decode<!kOneBlock>(wp[b] + off, mult[b], wv[b]);
    for (int v = 0; v < F::kVecs; ++v) {
      for (int a = 0; a < MT; ++a) {
        const __m256 xv = _mm256_loadu_ps(xp[a] + kk + 8 * v);
        for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_fmadd_ps(xv, wv[b][v], acc[a][b]);
      }
    }
  };
  const float* xr[MT];
  for (int a = 0; a < MT; ++a) xr[a] = x + a * ldx;
  for (int64_t kb = 0, cb = 0; kb < k; kb += bc, ++cb) {
    const int64_t ke = kb + bc < k ? kb + bc : k;
    __m256 mult[NT];
    for (int b = 0; b < NT; ++b) mult[b] = _mm256_set1_ps(F::mult(w, srow[b] + cb));
    int64_t kk = kb;
    for (; kk + F::kStep <= ke; kk += F::kStep) step(wr, kk * F::kStepBytes / F::kStep, xr, kk, mult);
    if (kk < ke) {
      // The k tail (only in the last block: block_cols is n_in or a multiple of 16): codes and x
      // copied into zero-padded buffers and processed like a full step.
      const int64_t rest = ke - kk, rest_bytes = (rest * F::kStepBytes + F::kStep - 1) / F::kStep;
      alignas(32) uint8_t wbuf[NT][F::kStepBytes];
      alignas(32) float xbuf[MT][F::kStep];
      const uint8_t* wp[NT];
      const float* xp[MT];
      for (int b = 0; b < NT; ++b) {
        std::memset(wbuf[b], 0, sizeof(wbuf[b]));
        std::memcpy(wbuf[b], wr[b] + kk * F::kStepBytes / F::kStep, size_t(rest_bytes));
        wp[b] = wbuf[b];
      }
      for (int a = 0; a < MT; ++a) {
        std::memset(xbuf[a], 0, sizeof(xbuf[a]));
        std::memcpy(xbuf[a], xr[a] + kk, size_t(rest) * sizeof(float));
        xp[a] = xbuf[a];
      }
      step(wp, 0, xp, 0, mult);
    }
  }
  for (int a = 0; a < MT; ++a) {
    for (int b = 0; b < NT; ++b) {
      y[a * ldy + b] = kOneBlock ? hsum(acc[a][b]) * F::mult(w, srow[b]) : hsum(acc[a][b]);
    }
  }
}

template <class F, int NT, bool kOneBlock>
inline void rows(const float* x, int64_t ldx, const QuantView& w, int64_t j, float* y, int64_t ldy,
                 int64_t m) {
  int64_t i = 0;
  for (; i + F::kMt <= m; i += F::kMt)
    tile<F, F::kMt, NT, kOneBlock>(x + i * ldx, ldx, w, j, y + i * ldy, ldy);
  for (; i < m; ++i) tile<F, 1, NT, kOneBlock>(x + i * ldx, ldx, w, j, y + i * ldy, ldy);
}

template <class F, bool kOneBlock>
void cols(const float* xb, int64_t ldx, const QuantView& w, float* yb, int64_t ldy, int64_t mb, int64_t j0,
          int64_t j1) {
  int64_t j = j0;
  for (; j + F::kNt <= j1; j += F::kNt) rows<F, F::kNt, kOneBlock>(xb, ldx, w, j, yb + j, ldy, mb);
  for (; j < j1; ++j) rows<F, 1, kOneBlock>(xb, ldx, w, j, yb + j, ldy, mb);
}

constexpr int64_t kRowBlock = 48;  // x rows kept in L2 while W streams

template <class F>
void matmul(const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m, int64_t j0,
            int64_t j1) {
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = m - i0 < kRowBlock ? m - i0 : kRowBlock;
    if (w.layout.n_scale_cols == 1) {
      cols<F, true>(x + i0 * ldx, ldx, w, y + i0 * ldy, ldy, mb, j0, j1);
    } else {
      cols<F, false>(x + i0 * ldx, ldx, w, y + i0 * ldy, ldy, mb, j0, j1);
    }
  }
}

// FP4 tiles (W4A16 here, W4A8 in both tables): the codes and scale codes of the NT weight rows
// starting at row j.
template <int NT>
inline void fp4_rows(const QuantView& w, int64_t j, const uint8_t** wr, const uint8_t** sr) {
  const QuantLayout& l = w.layout;
  for (int b = 0; b < NT; ++b) {
    wr[b] = w.data + (j + b) * w.data_stride;
    sr[b] = static_cast<const uint8_t*>(w.scales) + ((j + b) / l.block_rows) * w.scale_stride;
  }
}

// W4A8 tiles (both tables): the k tail from column kk (a multiple of `block`). Each row's remaining
// codes and scale codes are copied into zeroed buffers (wbuf: nt x w_bytes, sbuf: nt x s_bytes),
// and wg / sg point at them.
inline void fp4_tail(const QuantLayout& l, int nt, int64_t kk, int64_t block, const uint8_t* const* wr,
                     const uint8_t* const* sr, uint8_t* wbuf, size_t w_bytes, uint8_t* sbuf, size_t s_bytes,
                     const uint8_t** wg, const uint8_t** sg) {
  for (int b = 0; b < nt; ++b) {
    uint8_t* wb = wbuf + b * w_bytes;
    uint8_t* sb = sbuf + b * s_bytes;
    std::memset(wb, 0, w_bytes);
    std::memcpy(wb, wr[b] + kk / 2, size_t(l.row_bytes - kk / 2));
    std::memset(sb, 0, s_bytes);
    std::memcpy(sb, sr[b] + kk / block, size_t(l.n_scale_cols - kk / block));
    wg[b] = wb;
    sg[b] = sb;
  }
}

// ---- FP4 (NVFP4, MXFP4): 32 codes per step ----
//
// NOTE: one step decodes 16 bytes = 32 codes of a row without any int -> float conversion. FP4
// values are exact in BF16, so the two upper bytes of each value's F32 bit pattern come from two
// 16-entry tables (one pshufb each) indexed by the nibbles: low nibbles in the low 128-bit lane,
// high nibbles in the high lane. Interleaving the two bytes (unpack 8) and then zero low halves
// (unpack 16) yields four F32 vectors, each holding 8 consecutive elements in the order
// {0, 2, 4, 6, 1, 3, 5, 7} (the in-lane unpack order). Instead of restoring element order, x is
// permuted once per call into the same order (xperm, per thread, O(k)): x is shared by every row,
// so the cost vanishes next to the n_out x k decoding. Scales come from a per-call table of code ->
// F32 multiplier and are applied to 16-column partial sums (t = x.w over a half step; acc += t *
// scale), not to every decoded vector. Every output sees the same sequence for any MT, NT, m or
// column range (batch invariance).
inline void permute_x_fp4(const float* x, int64_t k, float* out) {
  static constexpr int kPerm[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  const int64_t kp = (k + 31) / 32 * 32;
  for (int64_t c = 0; c < kp; c += 8) {
    for (int i = 0; i < 8; ++i) out[c + i] = c + kPerm[i] < k ? x[c + kPerm[i]] : 0.0f;
  }
}

inline void decode_fp4_32(const uint8_t* p, __m256* out) {
  // F32 bits of E2M1 code c: byte 3 (sign, exponent) and byte 2 (exponent low bit, mantissa).
  const __m256i b3 = _mm256_setr_epi8(0, 0x3f, 0x3f, 0x3f, 0x40, 0x40, 0x40, 0x40, char(0x80), char(0xbf),
                                      char(0xbf), char(0xbf), char(0xc0), char(0xc0), char(0xc0), char(0xc0),
                                      0, 0x3f, 0x3f, 0x3f, 0x40, 0x40, 0x40, 0x40, char(0x80), char(0xbf),
                                      char(0xbf), char(0xbf), char(0xc0), char(0xc0), char(0xc0), char(0xc0));
  const __m256i b2 =
      _mm256_setr_epi8(0, 0, char(0x80), char(0xc0), 0, 0x40, char(0x80), char(0xc0), 0, 0, char(0x80),
                       char(0xc0), 0, 0x40, char(0x80), char(0xc0), 0, 0, char(0x80), char(0xc0), 0, 0x40,
                       char(0x80), char(0xc0), 0, 0, char(0x80), char(0xc0), 0, 0x40, char(0x80), char(0xc0));
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
  const __m256i nib = _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
  const __m256i hi = _mm256_shuffle_epi8(b3, nib), lo = _mm256_shuffle_epi8(b2, nib);
  const __m256i h0 = _mm256_unpacklo_epi8(lo, hi),
                h1 = _mm256_unpackhi_epi8(lo, hi);  // BF16 of bytes 0-7, 8-15
  const __m256i z = _mm256_setzero_si256();
  out[0] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, h0));  // elements 0..7   (bytes 0-3)
  out[1] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, h0));  // elements 8..15  (bytes 4-7)
  out[2] = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, h1));  // elements 16..23 (bytes 8-11)
  out[3] = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, h1));  // elements 24..31 (bytes 12-15)
}

// kOneScale: every step lies in one scale block (blocks >= 32 columns wide, or one block per row):
// then the step's 32 products are summed first and scaled once.
template <bool kOneScale, int MT, int NT>
inline void tile_fp4(const float* xp, int64_t ldxp, const QuantView& w, const float* mult_of, int64_t j,
                     float* y, int64_t ldy) {
  const QuantLayout& l = w.layout;
  const int64_t k = l.n_in, bc = l.block_cols, last_cb = l.n_scale_cols - 1;
  const uint8_t* wr[NT];
  const uint8_t* sr[NT];  // the row's scale codes
  fp4_rows<NT>(w, j, wr, sr);
  __m256 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_setzero_ps();
  auto step = [&](const uint8_t* const* wp, int64_t kk) {
    // Scales of the step's two 16-column halves (the same block when blocks are >= 32 wide),
    // looked up in the per-call table of code -> F32 multiplier (NOTE: two loads, no decoding).
    const int64_t c0 = kk / bc, c1 = (kk + 16) / bc < last_cb ? (kk + 16) / bc : last_cb;
    __m256 wv[NT][4], m0[NT], m1[NT];
    for (int b = 0; b < NT; ++b) {
      decode_fp4_32(wp[b], wv[b]);
      m0[b] = _mm256_broadcast_ss(mult_of + sr[b][c0]);
      if constexpr (!kOneScale) m1[b] = _mm256_broadcast_ss(mult_of + sr[b][c1]);
    }
    for (int a = 0; a < MT; ++a) {
      const float* xa = xp + a * ldxp + kk;
      const __m256 x0 = _mm256_loadu_ps(xa), x1 = _mm256_loadu_ps(xa + 8), x2 = _mm256_loadu_ps(xa + 16),
                   x3 = _mm256_loadu_ps(xa + 24);
      for (int b = 0; b < NT; ++b) {
        const __m256 t0 = _mm256_fmadd_ps(x1, wv[b][1], _mm256_mul_ps(x0, wv[b][0]));  // columns kk..kk+15
        if constexpr (kOneScale) {
          const __m256 t = _mm256_fmadd_ps(x3, wv[b][3], _mm256_fmadd_ps(x2, wv[b][2], t0));
          acc[a][b] = _mm256_fmadd_ps(t, m0[b], acc[a][b]);
        } else {
          const __m256 t1 = _mm256_fmadd_ps(x3, wv[b][3], _mm256_mul_ps(x2, wv[b][2]));  // kk+16..kk+31
          acc[a][b] = _mm256_fmadd_ps(t1, m1[b], _mm256_fmadd_ps(t0, m0[b], acc[a][b]));
        }
      }
    }
  };
  int64_t kk = 0;
  const uint8_t* wp[NT];
  for (; kk + 32 <= k; kk += 32) {
    for (int b = 0; b < NT; ++b) wp[b] = wr[b] + kk / 2;
    step(wp, kk);
  }
  if (kk < k) {
    // The k tail: codes copied into a zero-padded buffer (x is zero-padded by permute_x_fp4).
    alignas(32) uint8_t wbuf[NT][16];
    for (int b = 0; b < NT; ++b) {
      std::memset(wbuf[b], 0, 16);
      std::memcpy(wbuf[b], wr[b] + kk / 2, size_t(l.row_bytes - kk / 2));
      wp[b] = wbuf[b];
    }
    step(wp, kk);
  }
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) y[a * ldy + b] = hsum(acc[a][b]);
}

template <bool kOneScale, int NT>
inline void rows_fp4(const float* xp, int64_t ldxp, const QuantView& w, const float* mult_of, int64_t j,
                     float* y, int64_t ldy, int64_t m) {
  int64_t i = 0;
  // NOTE: 4 x rows per tile for small GEMMs (prefill): the decoded weights are reused 4 times
  // (1.4x over 2 rows at m = 4); the results do not depend on the tile shape.
  for (; i + 4 <= m; i += 4) tile_fp4<kOneScale, 4, NT>(xp + i * ldxp, ldxp, w, mult_of, j, y + i * ldy, ldy);
  for (; i + 2 <= m; i += 2) tile_fp4<kOneScale, 2, NT>(xp + i * ldxp, ldxp, w, mult_of, j, y + i * ldy, ldy);
  for (; i < m; ++i) tile_fp4<kOneScale, 1, NT>(xp + i * ldxp, ldxp, w, mult_of, j, y + i * ldy, ldy);
}

template <bool kOneScale>
void cols_fp4(const float* xp, int64_t ldxp, const QuantView& w, const float* mult_of, float* yb, int64_t ldy,
              int64_t mb, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) rows_fp4<kOneScale, 4>(xp, ldxp, w, mult_of, j, yb + j, ldy, mb);
  for (; j < j1; ++j) rows_fp4<kOneScale, 1>(xp, ldxp, w, mult_of, j, yb + j, ldy, mb);
}

// Per-thread scratch for the permuted x. NOTE: a plain malloc'd buffer in a type local to this file,
// not std::vector: its inline members would be compiled with AVX2 here and could be picked by the
// linker for the baseline code (the ODR rule at the top of the file).
struct Scratch {
  float* data = nullptr;
  size_t size = 0;
  float* get(size_t n) {
    if (n > size) {
      std::free(data);
      data = static_cast<float*>(std::malloc(n * sizeof(float)));
      size = n;
    }
    return data;
  }
  ~Scratch() { std::free(data); }
};

template <class F>
void matmul_fp4(const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy, int64_t m, int64_t j0,
                int64_t j1) {
  const int64_t k = w.layout.n_in, ldxp = (k + 31) / 32 * 32;
  // Scale code -> F32 multiplier (scale x global), built once per call: 256 entries, in L1.
  alignas(64) float mult_of[256];
  for (int c = 0; c < 256; ++c) mult_of[c] = F::mult(uint8_t(c), w.global_scale);
  const bool one_scale = w.layout.block_cols % 32 == 0 || w.layout.n_scale_cols == 1;
  // NOTE: grows to the largest x block seen, then reused: no allocation per call in steady state.
  thread_local Scratch scratch;
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = m - i0 < kRowBlock ? m - i0 : kRowBlock;
    float* xperm = scratch.get(size_t(mb * ldxp));
    for (int64_t i = 0; i < mb; ++i) permute_x_fp4(x + (i0 + i) * ldx, k, xperm + i * ldxp);
    if (one_scale) {
      cols_fp4<true>(xperm, ldxp, w, mult_of, y + i0 * ldy, ldy, mb, j0, j1);
    } else {
      cols_fp4<false>(xperm, ldxp, w, mult_of, y + i0 * ldy, ldy, mb, j0, j1);
    }
  }
}

// ---- W8A8 ----

void quantize_rows_i8(const float* x, int64_t ldx, int64_t m, int64_t k, int8_t* xq, int64_t ldq,
                      float* x_scale) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * ldx;
    int8_t* q = xq + i * ldq;
    __m256 mx = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= k; c += 8) mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_loadu_ps(xr + c), abs_mask));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    for (; c < k; ++c) {
      const float a = xr[c] < 0 ? -xr[c] : xr[c];
      amax = a > amax ? a : amax;
    }
    x_scale[i] = amax / 127.0f;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m256 iv = _mm256_set1_ps(inv), lim = _mm256_set1_ps(127.0f), nlim = _mm256_set1_ps(-127.0f);
    c = 0;
    for (; c + 8 <= k; c += 8) {
      __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + c), iv),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm256_min_ps(_mm256_max_ps(r, nlim), lim);
      const __m256i n = _mm256_cvtps_epi32(r);
      const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(n), _mm256_extracti128_si256(n, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + c), _mm_packs_epi16(p16, p16));
    }
    for (; c < k; ++c) {
      __m128 r = _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(xr[c] * inv),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm_min_ss(_mm_max_ss(r, _mm_set_ss(-127.0f)), _mm_set_ss(127.0f));
      q[c] = int8_t(_mm_cvtss_si32(r));
    }
  }
}

// acc + 8 int32 lanes, each the exact sum of 4 products of unsigned bytes (ax) and signed bytes
// (sw); every pair sum here fits in int16 (below), so vpmaddubsw never saturates and both ways give
// the same integers. With TIDAL_QUANT_AVXVNNI (this file compiled again as quant_avx2_vnni.cpp, for
// CPUs with AVX-VNNI) one VEX vpdpbusd; otherwise vpmaddubsw + vpmaddwd + vpaddd.
inline __m256i dot4_acc(__m256i acc, __m256i ax, __m256i sw) {
#ifdef TIDAL_QUANT_AVXVNNI
  return _mm256_dpbusd_avx_epi32(acc, ax, sw);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), _mm256_set1_epi16(1)));
#endif
}

// NOTE: int8 x int8 via vpmaddubsw needs an unsigned operand: |x| (unsigned) times w carrying x's
// sign (vpsignb). Pair sums stay within int16 because |x|, |w| <= 127 (2 * 127 * 128 < 2^15);
// vpmaddwd by 1 widens to int32. Sums are exact integers, so the order does not matter and every
// table agrees bit for bit.
template <int MT, int NT>
inline void tile_i8(const int8_t* xq, int64_t ldq, const float* xs, const QuantView& w, int64_t j, float* y,
                    int64_t ldy) {
  const int64_t k = w.layout.n_in;
  const int8_t* wr[NT];
  for (int b = 0; b < NT; ++b) wr[b] = reinterpret_cast<const int8_t*>(w.data + (j + b) * w.data_stride);
  __m256i acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_setzero_si256();
  auto step = [&](const __m256i* wv, const __m256i* xv) {
    for (int a = 0; a < MT; ++a) {
      const __m256i ax = _mm256_sign_epi8(xv[a], xv[a]);
      for (int b = 0; b < NT; ++b) {
        acc[a][b] = dot4_acc(acc[a][b], ax, _mm256_sign_epi8(wv[b], xv[a]));
      }
    }
  };
  int64_t kk = 0;
  if constexpr (MT == 2 && NT == 4) {
    // NOTE: named accumulators (8, with 4 weight vectors and 3 temporaries: within 16 registers).
    // With the array and the step lambda GCC 12 kept copying the accumulators between registers
    // and the stack every step.
    __m256i c00 = acc[0][0], c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    for (; kk + 32 <= k; kk += 32) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[0] + kk));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[1] + kk));
      const __m256i w2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[2] + kk));
      const __m256i w3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[3] + kk));
      __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + kk));
      __m256i ax = _mm256_sign_epi8(xv, xv);
      c00 = dot4_acc(c00, ax, _mm256_sign_epi8(w0, xv));
      c01 = dot4_acc(c01, ax, _mm256_sign_epi8(w1, xv));
      c02 = dot4_acc(c02, ax, _mm256_sign_epi8(w2, xv));
      c03 = dot4_acc(c03, ax, _mm256_sign_epi8(w3, xv));
      xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + ldq + kk));
      ax = _mm256_sign_epi8(xv, xv);
      c10 = dot4_acc(c10, ax, _mm256_sign_epi8(w0, xv));
      c11 = dot4_acc(c11, ax, _mm256_sign_epi8(w1, xv));
      c12 = dot4_acc(c12, ax, _mm256_sign_epi8(w2, xv));
      c13 = dot4_acc(c13, ax, _mm256_sign_epi8(w3, xv));
    }
    acc[0][0] = c00, acc[0][1] = c01, acc[0][2] = c02, acc[0][3] = c03;
    acc[1][0] = c10, acc[1][1] = c11, acc[1][2] = c12, acc[1][3] = c13;
  }
  for (; kk + 32 <= k; kk += 32) {
    __m256i wv[NT], xv[MT];
    for (int b = 0; b < NT; ++b) wv[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr[b] + kk));
    for (int a = 0; a < MT; ++a)
      xv[a] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + a * ldq + kk));
    step(wv, xv);
  }
  if (kk < k) {
    alignas(32) int8_t buf[32];
    __m256i wv[NT], xv[MT];
    for (int b = 0; b < NT; ++b) {
      std::memset(buf, 0, 32);
      std::memcpy(buf, wr[b] + kk, size_t(k - kk));
      wv[b] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
    }
    for (int a = 0; a < MT; ++a) {
      std::memset(buf, 0, 32);
      std::memcpy(buf, xq + a * ldq + kk, size_t(k - kk));
      xv[a] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
    }
    step(wv, xv);
  }
  for (int a = 0; a < MT; ++a) {
    for (int b = 0; b < NT; ++b) {
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[a][b]), _mm256_extracti128_si256(acc[a][b], 1));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
      s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
      y[a * ldy + b] = (float(_mm_cvtsi128_si32(s)) * xs[a]) * f32_scale(w, (j + b) * w.scale_stride);
    }
  }
}

template <int NT>
inline void rows_i8(const int8_t* xq, int64_t ldq, const float* xs, const QuantView& w, int64_t j, float* y,
                    int64_t ldy, int64_t m) {
  int64_t i = 0;
  for (; i + 2 <= m; i += 2) tile_i8<2, NT>(xq + i * ldq, ldq, xs + i, w, j, y + i * ldy, ldy);
  for (; i < m; ++i) tile_i8<1, NT>(xq + i * ldq, ldq, xs + i, w, j, y + i * ldy, ldy);
}

void matmul_i8_i8(const int8_t* xq, int64_t ldq, const float* xs, const QuantView& w, float* y, int64_t ldy,
                  int64_t m, int64_t j0, int64_t j1) {
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = m - i0 < kRowBlock ? m - i0 : kRowBlock;
    int64_t j = j0;
    // m = 1 (decode): one weight row at a time (one sequential stream per thread; see matmul_fp4_i8).
    if (mb > 1) {
      for (; j + 4 <= j1; j += 4) rows_i8<4>(xq + i0 * ldq, ldq, xs + i0, w, j, y + i0 * ldy + j, ldy, mb);
    }
    for (; j < j1; ++j) rows_i8<1>(xq + i0 * ldq, ldq, xs + i0, w, j, y + i0 * ldy + j, ldy, mb);
  }
}

// ---- FP4 weights x int8 activations (NVFP4 / MXFP4 "W4A8") ----
//
// NOTE: 16 bytes of codes (32 elements) become 32 int8 weights with one pshufb: the table maps an
// E2M1 code to 2 x its value, an exact integer in {0, +-1, +-2, +-3, +-4, +-6, +-8, +-12}. Low
// nibbles go to the low 128-bit lane, high nibbles to the high lane (one 16-byte broadcast load and
// a per-lane shift), so lane 0 holds the even elements 0, 2, ..., 30 and lane 1 the odd ones; x
// (already int8, one scale per row) is permuted into that order once per call. vpsignb +
// vpmaddubsw + vpmaddwd (as W8A8) give 8 exact int32 sums of 4 products each: int32 lane L < 4
// sums even elements 8L..8L+6, lane L >= 4 odd elements 8(L-4)+1..8(L-4)+7, so a 16-element NVFP4
// block is lanes {0, 1, 4, 5} or {2, 3, 6, 7} and a 32-element MXFP4 block is all eight. The int32
// sums are converted (exactly) and multiplied by their block's scale vector. Steps go in pairs:
// u = p0 * s0, u = fma(p1, s1, u), acc += u, so the accumulator's dependency chain is one add per
// 64 elements (one FMA chain per 32 elements was the limit of a one-row GEMV). NVFP4 scales are
// decoded eight at a time (one 128-element group) into one vector (E4M3 bit placement, times the
// global scale, as NvFp4::mult) and spread over the lanes with one vpermps per step; MXFP4 takes
// its one scale per step from the per-call table. y = hsum * (x_scale * 0.5). Every output sees the
// same instruction sequence for any m, tile or column range (batch invariance).
inline __m256i decode_fp4_i8_32(const uint8_t* p) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
                                       0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
  const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i nib = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
  return _mm256_shuffle_epi8(lut, _mm256_and_si256(nib, _mm256_set1_epi8(0x0f)));
}

// x row (int8, natural order) -> the nibble-lane order of decode_fp4_i8_32, zero-padded to kp (a
// multiple of 32), followed by the same kp values' magnitudes (vpmaddubsw's unsigned operand, made
// once here instead of once per weight row and step).
inline void permute_xq_fp4(const int8_t* x, int64_t k, int64_t kp, int8_t* out) {
  for (int64_t c = 0; c < kp; c += 32) {
    for (int i = 0; i < 16; ++i) {
      out[c + i] = c + 2 * i < k ? x[c + 2 * i] : int8_t(0);
      out[c + 16 + i] = c + 2 * i + 1 < k ? x[c + 2 * i + 1] : int8_t(0);
    }
  }
  for (int64_t c = 0; c < kp; ++c) out[kp + c] = int8_t(out[c] < 0 ? -out[c] : out[c]);  // |x| <= 127
}

constexpr int64_t kFp4Group = 128;  // columns per scale load (8 NVFP4 blocks, 4 MXFP4 blocks)

// One group of kSteps (<= 4) 32-column steps: codes at wg[b] (16 bytes per step), scale codes at
// sg[b] (8 for NVFP4, 4 for MXFP4), x at xg (32 per step) and |x| ldxp / 2 after it.
template <int kBlock, int MT, int NT, int kSteps>
inline void group_fp4_i8(const int8_t* xg, int64_t ldxp, const uint8_t* const* wg, const uint8_t* const* sg,
                         const float* mult_of, __m256 global, __m256 (&acc)[MT][NT]) {
  __m256 s8[NT];
  if constexpr (kBlock == 16) {
    for (int b = 0; b < NT; ++b) E4M3::decode<true>(sg[b], global, &s8[b]);
  }
  auto scale = [&](int b, int q) {
    if constexpr (kBlock == 16) {  // block 2q on int32 lanes {0, 1, 4, 5}, block 2q + 1 on {2, 3, 6, 7}
      return _mm256_permutevar8x32_ps(s8[b], _mm256_setr_epi32(2 * q, 2 * q, 2 * q + 1, 2 * q + 1, 2 * q, 2 * q,
                                                               2 * q + 1, 2 * q + 1));
    } else {
      return _mm256_broadcast_ss(mult_of + sg[b][q]);
    }
  };
  auto products = [&](__m256i wv, __m256i xv, __m256i ax) {
    return _mm256_cvtepi32_ps(dot4_acc(_mm256_setzero_si256(), ax, _mm256_sign_epi8(wv, xv)));
  };
  for (int q = 0; q < kSteps; q += 2) {
    const bool two = q + 1 < kSteps;
    __m256i w0[NT], w1[NT];
    __m256 s0[NT], s1[NT];
    for (int b = 0; b < NT; ++b) {
      w0[b] = decode_fp4_i8_32(wg[b] + 16 * q);
      s0[b] = scale(b, q);
      if (two) {
        w1[b] = decode_fp4_i8_32(wg[b] + 16 * (q + 1));
        s1[b] = scale(b, q + 1);
      }
    }
    for (int a = 0; a < MT; ++a) {
      const int8_t* xa = xg + a * ldxp + 32 * q;
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa));
      const __m256i ax0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + ldxp / 2));
      __m256i x1 = x0, ax1 = ax0;
      if (two) {
        x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + 32));
        ax1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa + 32 + ldxp / 2));
      }
      for (int b = 0; b < NT; ++b) {
        __m256 u = _mm256_mul_ps(products(w0[b], x0, ax0), s0[b]);
        if (two) u = _mm256_fmadd_ps(products(w1[b], x1, ax1), s1[b], u);
        acc[a][b] = _mm256_add_ps(acc[a][b], u);
      }
    }
  }
}

template <int kBlock, int MT, int NT>
inline void tile_fp4_i8(const int8_t* xp, int64_t ldxp, const float* xs, const QuantView& w, const float* mult_of,
                        int64_t j, float* y, int64_t ldy) {
  const QuantLayout& l = w.layout;
  const int64_t k = l.n_in;
  const __m256 global = _mm256_set1_ps(w.global_scale);
  const uint8_t* wr[NT];
  const uint8_t* sr[NT];
  fp4_rows<NT>(w, j, wr, sr);
  __m256 acc[MT][NT];
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) acc[a][b] = _mm256_setzero_ps();
  const uint8_t* wg[NT];
  const uint8_t* sg[NT];
  int64_t kk = 0;
  for (; kk + kFp4Group <= k; kk += kFp4Group) {
    for (int b = 0; b < NT; ++b) {
      wg[b] = wr[b] + kk / 2;
      sg[b] = sr[b] + kk / kBlock;
    }
    group_fp4_i8<kBlock, MT, NT, 4>(xp + kk, ldxp, wg, sg, mult_of, global, acc);
  }
  if (kk < k) {  // the k tail: codes and scale codes zero-padded (x is zero-padded to 32)
    alignas(32) uint8_t wbuf[NT][kFp4Group / 2];
    alignas(8) uint8_t sbuf[NT][8];
    fp4_tail(l, NT, kk, kBlock, wr, sr, wbuf[0], sizeof(wbuf[0]), sbuf[0], sizeof(sbuf[0]), wg, sg);
    switch ((k - kk + 31) / 32) {
      case 1: group_fp4_i8<kBlock, MT, NT, 1>(xp + kk, ldxp, wg, sg, mult_of, global, acc); break;
      case 2: group_fp4_i8<kBlock, MT, NT, 2>(xp + kk, ldxp, wg, sg, mult_of, global, acc); break;
      case 3: group_fp4_i8<kBlock, MT, NT, 3>(xp + kk, ldxp, wg, sg, mult_of, global, acc); break;
      default: group_fp4_i8<kBlock, MT, NT, 4>(xp + kk, ldxp, wg, sg, mult_of, global, acc); break;
    }
  }
  for (int a = 0; a < MT; ++a)
    for (int b = 0; b < NT; ++b) y[a * ldy + b] = hsum(acc[a][b]) * (xs[a] * 0.5f);
}

template <int kBlock, int NT>
inline void rows_fp4_i8(const int8_t* xp, int64_t ldxp, const float* xs, const QuantView& w, const float* mult_of,
                        int64_t j, float* y, int64_t ldy, int64_t m) {
  int64_t i = 0;
  for (; i + 3 <= m; i += 3) tile_fp4_i8<kBlock, 3, NT>(xp + i * ldxp, ldxp, xs + i, w, mult_of, j, y + i * ldy, ldy);
  for (; i < m; ++i) tile_fp4_i8<kBlock, 1, NT>(xp + i * ldxp, ldxp, xs + i, w, mult_of, j, y + i * ldy, ldy);
}

struct ScratchI8 {
  int8_t* data = nullptr;
  size_t size = 0;
  int8_t* get(size_t n) {
    if (n > size) {
      std::free(data);
      data = static_cast<int8_t*>(std::malloc(n));
      size = n;
    }
    return data;
  }
  ~ScratchI8() { std::free(data); }
};

// The W4A8 activation layout (QuantKernelTable::prepare_fp4_i8): each row as permute_xq_fp4
// leaves it, kp = n_in rounded up to 32 bytes of x, then kp bytes of |x|.
inline int64_t fp4_i8_padded_k(int64_t k) { return (k + 31) / 32 * 32; }

int64_t fp4_i8_row_bytes(int64_t k) { return 2 * fp4_i8_padded_k(k); }

void prepare_fp4_i8(const int8_t* xq, int64_t ldq, int64_t m, int64_t k, int8_t* xp) {
  const int64_t kp = fp4_i8_padded_k(k), ldxp = fp4_i8_row_bytes(k);
  for (int64_t i = 0; i < m; ++i) permute_xq_fp4(xq + i * ldq, k, kp, xp + i * ldxp);
}

template <class F, int kBlock>
void matmul_fp4_i8_prepared(const int8_t* xp, int64_t ldxp, const float* xs, const QuantView& w, float* y,
                            int64_t ldy, int64_t m, int64_t j0, int64_t j1) {
  alignas(64) float mult_of[256];
  for (int c = 0; c < 256; ++c) mult_of[c] = F::mult(uint8_t(c), w.global_scale);
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t mb = m - i0 < kRowBlock ? m - i0 : kRowBlock;
    const int8_t* xb = xp + i0 * ldxp;
    int64_t j = j0;
    // NOTE: m = 1 (decode) walks one weight row at a time: one sequential stream per thread
    // measured faster from DRAM than 4 interleaved rows (gemv/nvfp4_w4a8 2 threads: ~8-9 vs
    // ~6 GB/s), and a step's 32 products per FMA keep one accumulator chain fed. Larger m: 3 x
    // rows x 2 weight rows, the decoded weights reused across x rows. Same results either way.
    if (mb > 1) {
      for (; j + 2 <= j1; j += 2) rows_fp4_i8<kBlock, 2>(xb, ldxp, xs + i0, w, mult_of, j, y + i0 * ldy + j, ldy, mb);
    }
    for (; j < j1; ++j) rows_fp4_i8<kBlock, 1>(xb, ldxp, xs + i0, w, mult_of, j, y + i0 * ldy + j, ldy, mb);
  }
}

// A W4A8 entry on natural-order int8 activations (the table's matmul_{nv,mx}fp4_i8), for kernels
// that read prepared rows: each block of kRows x rows is prepared into per-thread scratch, then
// multiplied. Shared with the AVX-512 table (quant_avx512.cpp includes this file).
template <int64_t kRows, PreparedRowBytesFn kRowBytes, PrepareI8Fn kPrepare, MatmulI8I8Fn kPrepared>
void matmul_i8_via_prepared(const int8_t* xq, int64_t ldq, const float* xs, const QuantView& w, float* y,
                            int64_t ldy, int64_t m, int64_t j0, int64_t j1) {
  const int64_t k = w.layout.n_in, ldxp = kRowBytes(k);
  thread_local ScratchI8 scratch;
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    const int64_t mb = m - i0 < kRows ? m - i0 : kRows;
    int8_t* xp = scratch.get(size_t(mb * ldxp));
    kPrepare(xq + i0 * ldq, ldq, mb, k, xp);
    kPrepared(xp, ldxp, xs + i0, w, y + i0 * ldy, ldy, mb, j0, j1);
  }
}

template <class F, int kBlock>
constexpr MatmulI8I8Fn matmul_fp4_i8 =
    matmul_i8_via_prepared<kRowBlock, fp4_i8_row_bytes, prepare_fp4_i8, matmul_fp4_i8_prepared<F, kBlock>>;

}  // namespace

// One table per compilation of this file: plain AVX2 (here), AVX2 + AVX-VNNI (quant_avx2_vnni.cpp),
// and the base of the AVX-512 VNNI table (quant_avx512.cpp, which overrides its int8 products).
#if defined(TIDAL_QUANT_AVXVNNI)
extern const QuantKernelTable kQuantKernelTableAvxVnni = {"avx2_vnni",      matmul<Int8>,      matmul<E4M3>,
                                                          matmul<E5M2>,     matmul_fp4<NvFp4>, matmul_fp4<MxFp4>,
                                                          quantize_rows_i8, matmul_i8_i8,
                                                          matmul_fp4_i8<NvFp4, 16>, matmul_fp4_i8<MxFp4, 32>,
                                                          fp4_i8_row_bytes,         prepare_fp4_i8,
                                                          matmul_fp4_i8_prepared<NvFp4, 16>,
                                                          matmul_fp4_i8_prepared<MxFp4, 32>};
#elif defined(TIDAL_QUANT_VNNI)
extern const QuantKernelTable kQuantKernelTableAvx2Vnni = {"avx512_vnni",    matmul<Int8>,      matmul<E4M3>,
                                                           matmul<E5M2>,     matmul_fp4<NvFp4>, matmul_fp4<MxFp4>,
                                                           quantize_rows_i8, matmul_i8_i8,
                                                           matmul_fp4_i8<NvFp4, 16>, matmul_fp4_i8<MxFp4, 32>,
                                                           fp4_i8_row_bytes,         prepare_fp4_i8,
                                                           matmul_fp4_i8_prepared<NvFp4, 16>,
                                                           matmul_fp4_i8_prepared<MxFp4, 32>};
#else
extern const QuantKernelTable kQuantKernelTableAvx2 = {"avx2",           matmul<Int8>,      matmul<E4M3>,
                                                       matmul<E5M2>,     matmul_fp4<NvFp4>, matmul_fp4<MxFp4>,
                                                       quantize_rows_i8, matmul_i8_i8,
                                                       matmul_fp4_i8<NvFp4, 16>, matmul_fp4_i8<MxFp4, 32>,
                                                       fp4_i8_row_bytes,         prepare_fp4_i8,
                                                       matmul_fp4_i8_prepared<NvFp4, 16>,
                                                       matmul_fp4_i8_prepared<MxFp4, 32>};
#endif

}  // namespace tidal
