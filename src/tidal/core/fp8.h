// FP8 element types (OCP 8-bit floating point, v1.0; NVIDIA's float8_e4m3fn / float8_e5m2) and
// exact conversions.
//
// E4M3 ("fn": finite + NaN): bias 7, no infinities; S.1111.111 is NaN; the largest finite value is
// 448 (S.1111.110); the smallest subnormal 2^-9.
// E5M2: bias 15, IEEE-like: S.11111.00 is infinity, S.11111.{01,10,11} are NaN; largest finite
// 57344; smallest subnormal 2^-16. (E5M2 is the top byte of an IEEE binary16.)
//
// Decoding (fp8 -> f32) is exact for every code. Encoding (f32 -> fp8) rounds to nearest, ties to
// even, and overflows as follows:
// - f32_to_fp8_e4m3: "satfinite" (NVIDIA __NV_SATFINITE, the OCP saturation mode): finite values
//   and infinities beyond the range become +-448; NaN becomes NaN (0x7f | sign).
// - f32_to_fp8_e5m2: IEEE (NVIDIA __NV_NOSAT): values that round past 57344 become +-inf, inf stays
//   inf, NaN becomes a quiet NaN (0x7e | sign).
// - f32_to_fp8_e5m2_satfinite: as above but finite overflow and infinities become +-57344.
// (PyTorch's .to(float8_e4m3fn) differs: it maps overflow to NaN. Quantizers here always scale
// into range first, so the rule only matters for out-of-range inputs.)
// Tested exhaustively in tests/core/fp8_test.cpp (every code, every midpoint).
#pragma once

#include <cstdint>

#include "tidal/core/dtype.h"
#include "tidal/core/minifloat.h"

namespace tidal {

constexpr float kFp8E4M3Max = 448.0f;
constexpr float kFp8E5M2Max = 57344.0f;
constexpr uint8_t kFp8E4M3MaxCode = 0x7e, kFp8E4M3NanCode = 0x7f;
constexpr uint8_t kFp8E5M2MaxCode = 0x7b, kFp8E5M2InfCode = 0x7c, kFp8E5M2NanCode = 0x7e;

inline float fp8_e4m3_to_f32(uint8_t c) {
  const uint32_t sign = uint32_t(c & 0x80u) << 24;
  if ((c & 0x7fu) == 0x7fu) return f32_from_bits(sign | 0x7fc00000u);
  return f32_from_bits(sign | f32_bits(minifloat::decode_abs<4, 3, 7>(c & 0x7fu)));
}

inline float fp8_e5m2_to_f32(uint8_t c) { return f16_to_f32(uint16_t(uint16_t(c) << 8)); }

inline uint8_t f32_to_fp8_e4m3(float f) {
  const uint32_t u = f32_bits(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint8_t(sign | kFp8E4M3NanCode);
  if (a == 0x7f800000u) return uint8_t(sign | kFp8E4M3MaxCode);  // satfinite: inf -> max
  const uint32_t c = minifloat::round_abs<4, 3, 7>(a);
  return uint8_t(sign | (c > kFp8E4M3MaxCode ? kFp8E4M3MaxCode : c));
}

inline uint8_t f32_to_fp8_e5m2(float f) {
  const uint32_t u = f32_bits(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint8_t(sign | kFp8E5M2NanCode);
  if (a == 0x7f800000u) return uint8_t(sign | kFp8E5M2InfCode);
  const uint32_t c = minifloat::round_abs<5, 2, 15>(a);
  return uint8_t(sign | (c > kFp8E5M2MaxCode ? kFp8E5M2InfCode : c));
}

inline uint8_t f32_to_fp8_e5m2_satfinite(float f) {
  const uint32_t u = f32_bits(f);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint8_t(sign | kFp8E5M2NanCode);
  if (a == 0x7f800000u) return uint8_t(sign | kFp8E5M2MaxCode);
  const uint32_t c = minifloat::round_abs<5, 2, 15>(a);
  return uint8_t(sign | (c > kFp8E5M2MaxCode ? kFp8E5M2MaxCode : c));
}

}  // namespace tidal
