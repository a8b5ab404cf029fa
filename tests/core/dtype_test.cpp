#include "tidal/core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace tidal {
namespace {

bool is_nan_bits16_f16(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
bool is_nan_bits16_bf16(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }

// Every bf16 pattern widens exactly and narrows back to itself (NaNs stay NaN, sign kept).
TEST(DTypeTest, Bf16RoundTripAllPatterns) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    const float f = bf16_to_f32(h);
    EXPECT_EQ(f32_bits(f), uint32_t(h) << 16);
    const uint16_t back = f32_to_bf16(f);
    if (is_nan_bits16_bf16(h)) {
      EXPECT_TRUE(is_nan_bits16_bf16(back)) << i;
      EXPECT_EQ(back & 0x8000, h & 0x8000);
    } else {
      EXPECT_EQ(back, h) << i;
    }
  }
}

// Midpoints between adjacent bf16 values round to the even neighbour; points just off the
// midpoint round to the nearer one. Checked for every finite pattern.
TEST(DTypeTest, Bf16RoundToNearestEvenAllMidpoints) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t lo = uint16_t(i);
    if ((lo & 0x7f80) == 0x7f80) continue;  // inf / nan
    const uint16_t hi = uint16_t(lo + 1);   // next magnitude away from zero (same sign)
    if ((hi & 0x7fff) == 0) continue;       // wrapped past the sign
    const uint32_t mid = (uint32_t(lo) << 16) | 0x8000u;
    const uint16_t even = (lo & 1) ? hi : lo;
    EXPECT_EQ(f32_to_bf16(f32_from_bits(mid)), even) << std::hex << i;
    EXPECT_EQ(f32_to_bf16(f32_from_bits(mid - 1)), lo) << std::hex << i;
    EXPECT_EQ(f32_to_bf16(f32_from_bits(mid + 1)), hi) << std::hex << i;
  }
}

TEST(DTypeTest, Bf16Specials) {
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_TRUE(is_nan_bits16_bf16(f32_to_bf16(NAN)));
  // NaN whose payload lives only in the low 16 bits must not become infinity.
  EXPECT_TRUE(is_nan_bits16_bf16(f32_to_bf16(f32_from_bits(0x7f800001u))));
  // The largest finite float rounds up to infinity.
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x7f7fffffu)), 0x7f80);
}

// The compiler's _Float16 is the reference below. GCC 12 has it on x86-64; clang 14 (the sanitizer
// tree) does not, and there the two reference tests are compiled out (the release tree runs them).
#if defined(__FLT16_MAX__)
// Exact widening of every binary16 pattern, checked against the compiler's _Float16.
TEST(DTypeTest, F16WidenAllPatterns) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = uint16_t(i);
    _Float16 ref;
    std::memcpy(&ref, &h, 2);
    const float want = float(ref);
    const float got = f16_to_f32(h);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << i;
    } else {
      EXPECT_EQ(f32_bits(got), f32_bits(want)) << std::hex << i;
    }
    if (!is_nan_bits16_f16(h)) {
      EXPECT_EQ(f32_to_f16(got), h) << std::hex << i;
    }
  }
}

// Narrowing matches the compiler's round-to-nearest-even _Float16 conversion on every midpoint,
// its neighbours, and a sweep of float bit patterns covering subnormals, normals and overflow.
TEST(DTypeTest, F16NarrowMatchesCompilerEverywhere) {
  auto check = [](uint32_t bits) {
    const float f = f32_from_bits(bits);
    const _Float16 ref = _Float16(f);
    uint16_t want;
    std::memcpy(&want, &ref, 2);
    const uint16_t got = f32_to_f16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(is_nan_bits16_f16(got));
    } else {
      EXPECT_EQ(got, want) << std::hex << bits;
    }
  };
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t lo = uint16_t(i);
    if ((lo & 0x7c00) == 0x7c00) continue;
    const float a = f16_to_f32(lo), b = f16_to_f32(uint16_t(lo + 1));
    if (std::isinf(b) && (lo & 0x7fff) != 0x7bff) continue;
    const double mid = (double(a) + double(b)) / 2;  // exact in double
    const uint32_t m = f32_bits(float(mid));
    check(m);
    check(m - 1);
    check(m + 1);
  }
  for (uint64_t bits = 0; bits < (1ull << 32); bits += 65521) check(uint32_t(bits));
}
#endif  // __FLT16_MAX__

TEST(DTypeTest, Names) {
  EXPECT_EQ(dtype_from_name("BF16"), DType::kBF16);
  EXPECT_EQ(dtype_from_name("bf16"), DType::kBF16);
  EXPECT_EQ(dtype_from_name("F8_E4M3"), DType::kF8E4M3);
  EXPECT_STREQ(dtype_name(DType::kF8E5M2), "F8_E5M2");
  EXPECT_EQ(dtype_size(DType::kF8E8M0), 1u);
  EXPECT_EQ(dtype_from_name("F8_E9M9"), std::nullopt);
  EXPECT_STREQ(dtype_name(DType::kF16), "F16");
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
}

}  // namespace
}  // namespace tidal
