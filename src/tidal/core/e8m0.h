// E8M0 (OCP MX v1.0 scale type): an unsigned power of two, 2^(code - 127) for codes 0..254;
// code 255 is NaN. No sign, no zero, no mantissa. Used as the 32-element block scale of MXFP4.
//
// Conversions from f32 (both exact for powers of two, and tested over every code):
// - f32_to_e8m0_floor: 2^floor(log2(x)), the OCP MX reference rule for shared scales
//   (X = 2^(floor(log2(amax)) - emax_elem)); x below 2^-127 (incl. 0 and f32 subnormals below it)
//   -> code 0; +inf -> 254 (satfinite); NaN or negative (sign bit set, -0 too) -> 255 (NaN).
// - e8m0_from_exponent: the code of 2^e, clamped to [2^-127, 2^127].
#pragma once

#include <cstdint>

#include "tidal/core/dtype.h"

namespace tidal {

constexpr uint8_t kE8M0NanCode = 0xff;

inline float e8m0_to_f32(uint8_t c) {
  if (c == kE8M0NanCode) return f32_from_bits(0x7fc00000u);
  if (c == 0) return f32_from_bits(0x00400000u);  // 2^-127 is an f32 subnormal
  return f32_from_bits(uint32_t(c) << 23);
}

inline uint8_t e8m0_from_exponent(int e) {
  if (e < -127) return 0;
  if (e > 127) return 254;
  return uint8_t(e + 127);
}

inline uint8_t f32_to_e8m0_floor(float f) {
  const uint32_t u = f32_bits(f);
  if (u > 0x7f800000u) return kE8M0NanCode;  // NaN or negative (sign bit set)
  const uint32_t exp = u >> 23;
  if (exp == 0) return 0;       // zero or f32 subnormal: 2^-127 or below -> code 0
  if (exp == 0xff) return 254;  // +inf
  return uint8_t(exp);          // 2^(exp-127) has code exp
}

}  // namespace tidal
