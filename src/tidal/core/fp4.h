// FP4 E2M1 (OCP MX v1.0 "FP4", NVIDIA float4_e2m1fn): 1 sign, 2 exponent (bias 1), 1 mantissa bit;
// no infinities or NaN. The 16 codes are +-{0, 0.5, 1, 1.5, 2, 3, 4, 6} (code 0x8 is -0).
//
// A code is a nibble (low 4 bits of a uint8_t; the upper bits of the argument are ignored).
// Packed storage puts two codes in a byte, element 2i in the LOW nibble and element 2i+1 in the
// high nibble (OCP / NVIDIA / PyTorch float4_e2m1fn_x2 order); see fp4_pack/fp4_unpack.
//
// f32 -> E2M1 rounds to nearest, ties to even, and saturates (the only mode the hardware offers:
// PTX cvt.rn.satfinite.e2m1x2): |x| > 6 and infinities become +-6. NaN has no encoding; Tidal maps
// it to +6 (0x7). Quantizers reject non-finite weights before converting, so this never happens
// on their path. Tested exhaustively in tests/core/fp4_test.cpp.
#pragma once

#include <cstdint>

#include "tidal/core/dtype.h"
#include "tidal/core/minifloat.h"

namespace tidal {

constexpr float kFp4E2M1Max = 6.0f;
constexpr uint8_t kFp4E2M1MaxCode = 0x7;

inline float fp4_e2m1_to_f32(uint8_t c) {
  const uint32_t sign = uint32_t(c & 0x8u) << 28;
  return f32_from_bits(sign | f32_bits(minifloat::decode_abs<2, 1, 1>(c & 0x7u)));
}

inline uint8_t f32_to_fp4_e2m1(float f) {
  const uint32_t u = f32_bits(f);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return kFp4E2M1MaxCode;  // NaN: no encoding (see above)
  const uint8_t sign = uint8_t((u >> 28) & 0x8u);
  if (a == 0x7f800000u) return uint8_t(sign | kFp4E2M1MaxCode);
  const uint32_t c = minifloat::round_abs<2, 1, 1>(a);
  return uint8_t(sign | (c > kFp4E2M1MaxCode ? kFp4E2M1MaxCode : c));
}

// Two codes in one byte: lo = element 2i, hi = element 2i+1.
inline uint8_t fp4_pack(uint8_t lo, uint8_t hi) { return uint8_t((lo & 0xfu) | ((hi & 0xfu) << 4)); }
inline uint8_t fp4_unpack(uint8_t byte, int64_t element) {
  return uint8_t((element & 1) ? (byte >> 4) : (byte & 0xfu));
}

}  // namespace tidal
