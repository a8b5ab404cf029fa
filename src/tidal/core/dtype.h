// Element types and exact conversions between them.
//
// All float -> 16-bit conversions round to nearest, ties to even; NaN stays NaN (quiet), infinities
// and signed zeros are preserved, values too large for the format become infinity (as IEEE does).
// 16-bit -> float conversions are exact. Tested exhaustively over all 65,536 bit patterns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace tidal {

// kF8E4M3 / kF8E5M2 / kF8E8M0: 8-bit storage types of quantized checkpoints (core/fp8.h, e8m0.h);
// stored and passed around, never computed on directly.
enum class DType : uint8_t { kF32, kF16, kBF16, kI32, kI64, kU8, kI8, kF8E4M3, kF8E5M2, kF8E8M0 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);                          // "F32", "BF16", ... (safetensors spelling)
std::optional<DType> dtype_from_name(std::string_view s);  // accepts safetensors and lower-case spellings

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// ---- bfloat16 ----
inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN -> quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even; overflow carries into +-inf
  return uint16_t(u >> 16);
}

// ---- IEEE binary16 ----
inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp == 0) {
    if (man == 0) return f32_from_bits(sign);
    // subnormal: value = man * 2^-24, exactly representable in f32
    float v = float(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x1ffu));  // quiet NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf (or is inf)
  if (a < 0x38800000u) {
    // Result is subnormal or zero: q = round_to_nearest_even(value / 2^-24).
    if (a < 0x33000000u) return sign;  // below 2^-25 rounds to zero (2^-25 itself ties to even 0)
    uint32_t exp = a >> 23;                        // 102..112 here
    uint32_t man = (a & 0x7fffffu) | 0x800000u;    // value = man * 2^(exp-150)
    uint32_t shift = 126 - exp;                    // value / 2^-24 = man >> shift (14..24)
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return uint16_t(sign | q);
  }
  // normal: rebias exponent, round mantissa from 23 to 10 bits
  uint32_t r = a - 0x38000000u;  // exponent -= 112
  r += 0xfffu + ((r >> 13) & 1u);
  return uint16_t(sign | (r >> 13));
}

}  // namespace tidal
