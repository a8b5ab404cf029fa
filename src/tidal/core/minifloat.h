// Shared bit-level helpers for the small float formats (FP8 E4M3/E5M2, FP4 E2M1). Internal to
// fp8.h and fp4.h; not an API of its own.
//
// A format is described by its exponent bits E, mantissa bits M and exponent bias B, with IEEE
// layout (sign, exponent, mantissa), subnormals when the exponent field is 0, and magnitudes
// ordered like their codes. How the top codes are spent (infinity, NaN or more finite values)
// differs per format and is handled by the caller.
#pragma once

#include <cstdint>

#include "tidal/core/dtype.h"

namespace tidal::minifloat {

// The magnitude code (exponent and mantissa fields, no sign) nearest to the finite non-negative
// float whose bits are `a`, ties to even. The result may exceed the format's largest code (the
// value rounded past the top of the range); callers saturate or map it to infinity.
// Requires 1 - B - M > -126 (the format's smallest subnormal is a normal f32), true for every
// format here; f32 subnormal inputs therefore always round to 0.
template <int kExpBits, int kManBits, int kBias>
constexpr uint32_t round_abs(uint32_t a) {
  static_assert(1 - kBias - kManBits > -126, "format's subnormals must be normal f32 values");
  constexpr int kMinExp = 1 - kBias;  // unbiased exponent of the smallest normal
  constexpr uint32_t kMinNormalBits = uint32_t(kMinExp + 127) << 23;
  if (a < kMinNormalBits) {
    // Subnormal (or zero) result: q = round_to_nearest_even(value / 2^(kMinExp - kManBits)).
    const uint32_t exp = a >> 23;
    if (exp == 0) return 0;  // f32 zero or subnormal: far below half the smallest subnormal
    const uint32_t man = (a & 0x7fffffu) | 0x800000u;           // value = man * 2^(exp - 150)
    const int shift = (kMinExp - kManBits) - (int(exp) - 150);  // >= 24 - kManBits
    if (shift > 24) return 0;                                   // value < quantum / 2 (man < 2^24 <= half)
    const uint32_t q = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    return q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
  }
  // Normal result: rebias the exponent and round the mantissa from 23 to kManBits bits; a carry
  // out of the mantissa correctly bumps the exponent (and may run past the largest code).
  constexpr int kDrop = 23 - kManBits;
  uint32_t r = a - (uint32_t(127 - kBias) << 23);
  r += ((1u << (kDrop - 1)) - 1u) + ((r >> kDrop) & 1u);
  return r >> kDrop;
}

// The value of magnitude code c (no sign), treating every exponent field as finite.
template <int kExpBits, int kManBits, int kBias>
inline float decode_abs(uint32_t c) {
  const uint32_t exp = c >> kManBits, man = c & ((1u << kManBits) - 1u);
  if (exp == 0) {
    // subnormal: man * 2^(1 - B - M), a product of exactly representable values
    return float(man) * f32_from_bits(uint32_t(1 - kBias - kManBits + 127) << 23);
  }
  return f32_from_bits(((exp - kBias + 127) << 23) | (man << (23 - kManBits)));
}

}  // namespace tidal::minifloat
