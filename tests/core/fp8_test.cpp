#include "tidal/core/fp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "minifloat_reference.h"

namespace tidal {
namespace {

using testing::MinifloatSpec;
constexpr MinifloatSpec kE4M3{4, 3, 7, 0x7e};
constexpr MinifloatSpec kE5M2{5, 2, 15, 0x7b};

enum class Overflow { kSaturate, kInfinity };

uint8_t reference_encode(const testing::ReferenceTable& t, const MinifloatSpec& s, float f, Overflow ov,
                         uint8_t inf_code) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const auto r = t.round_abs(std::fabs(double(f)));
  if (r.overflow || std::isinf(f)) return uint8_t(sign | (ov == Overflow::kSaturate ? s.max_code : inf_code));
  return uint8_t(sign | r.code);
}

TEST(Fp8Test, E4M3DecodesEveryCode) {
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = fp8_e4m3_to_f32(uint8_t(c));
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(f)) << c;
      continue;
    }
    const double ref = testing::reference_value(kE4M3, c & 0x7f) * ((c & 0x80) ? -1 : 1);
    EXPECT_EQ(double(f), ref) << c;
    EXPECT_EQ(std::signbit(f), (c & 0x80) != 0) << c;
  }
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
}

TEST(Fp8Test, E5M2DecodesEveryCode) {
  for (uint32_t c = 0; c < 256; ++c) {
    const float f = fp8_e5m2_to_f32(uint8_t(c));
    const uint32_t mag = c & 0x7f;
    if (mag == 0x7c) {
      EXPECT_TRUE(std::isinf(f)) << c;
    } else if (mag > 0x7c) {
      EXPECT_TRUE(std::isnan(f)) << c;
    } else {
      EXPECT_EQ(double(f), testing::reference_value(kE5M2, mag) * ((c & 0x80) ? -1 : 1)) << c;
    }
    EXPECT_EQ(std::signbit(f), (c & 0x80) != 0) << c;
  }
  EXPECT_EQ(fp8_e5m2_to_f32(0x7b), 57344.0f);
  EXPECT_EQ(fp8_e5m2_to_f32(0x01), std::ldexp(1.0f, -16));
}

TEST(Fp8Test, EveryFiniteCodeRoundTrips) {
  for (uint32_t c = 0; c < 256; ++c) {
    if ((c & 0x7f) != 0x7f) {
      EXPECT_EQ(f32_to_fp8_e4m3(fp8_e4m3_to_f32(uint8_t(c))), c) << c;
    }
    if ((c & 0x7f) < 0x7c) {
      EXPECT_EQ(f32_to_fp8_e5m2(fp8_e5m2_to_f32(uint8_t(c))), c) << c;
      EXPECT_EQ(f32_to_fp8_e5m2_satfinite(fp8_e5m2_to_f32(uint8_t(c))), c) << c;
    }
  }
  EXPECT_EQ(f32_to_fp8_e5m2(INFINITY), 0x7c);
  EXPECT_EQ(f32_to_fp8_e5m2(-INFINITY), 0xfc);
}

// For every pair of adjacent finite magnitudes (and past the top): the midpoint goes to the even
// code, one f32 ulp either side goes to the nearer code. Both signs.
template <class Enc>
void check_midpoints(const MinifloatSpec& s, Enc enc, uint8_t overflow_code, const char* what) {
  for (uint32_t c = 0; c <= s.max_code; ++c) {
    const double lo = testing::reference_value(s, c);
    const double hi =
        c < s.max_code ? testing::reference_value(s, c + 1) : lo + (lo - testing::reference_value(s, c - 1));
    const uint32_t hi_code = c < s.max_code ? c + 1 : overflow_code;
    const float mid = float((lo + hi) / 2);
    ASSERT_EQ(double(mid), (lo + hi) / 2) << "midpoint not exact in f32";
    const uint32_t even = (c & 1u) ? hi_code : c;
    for (float sign : {1.0f, -1.0f}) {
      const uint8_t sb = sign < 0 ? 0x80 : 0;
      EXPECT_EQ(enc(sign * mid), uint8_t(sb | even)) << what << " mid after code " << c;
      EXPECT_EQ(enc(sign * std::nextafter(mid, 0.0f)), uint8_t(sb | c)) << what << " below mid after " << c;
      EXPECT_EQ(enc(sign * std::nextafter(mid, INFINITY)), uint8_t(sb | hi_code))
          << what << " above mid after " << c;
    }
  }
}

TEST(Fp8Test, E4M3MidpointsRoundToNearestEvenAndSaturate) {
  // Past the top, E4M3 satfinite saturates: the "next" code is the max itself.
  check_midpoints(kE4M3, f32_to_fp8_e4m3, kFp8E4M3MaxCode, "e4m3");
  EXPECT_EQ(f32_to_fp8_e4m3(464.0f), 0x7e);  // would round to 480 (the NaN code) without saturation
  EXPECT_EQ(f32_to_fp8_e4m3(1e30f), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(-1e30f), 0xfe);
  EXPECT_EQ(f32_to_fp8_e4m3(INFINITY), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(-INFINITY), 0xfe);
  EXPECT_EQ(f32_to_fp8_e4m3(NAN), 0x7f);
  EXPECT_EQ(f32_to_fp8_e4m3(-NAN), 0xff);
  EXPECT_EQ(f32_to_fp8_e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: tie to 0
  EXPECT_EQ(f32_to_fp8_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_EQ(f32_to_fp8_e4m3(f32_from_bits(1)), 0x00);  // f32 subnormal
}

TEST(Fp8Test, E5M2MidpointsRoundToNearestEvenAndOverflow) {
  check_midpoints(kE5M2, f32_to_fp8_e5m2, kFp8E5M2InfCode, "e5m2");
  check_midpoints(kE5M2, f32_to_fp8_e5m2_satfinite, kFp8E5M2MaxCode, "e5m2 satfinite");
  EXPECT_EQ(f32_to_fp8_e5m2(61440.0f), 0x7c);  // midpoint 57344..65536 ties to even -> inf
  EXPECT_EQ(f32_to_fp8_e5m2(std::nextafter(61440.0f, 0.0f)), 0x7b);
  EXPECT_EQ(f32_to_fp8_e5m2_satfinite(INFINITY), 0x7b);
  EXPECT_EQ(f32_to_fp8_e5m2_satfinite(-1e30f), 0xfb);
  EXPECT_EQ(f32_to_fp8_e5m2(NAN) & 0x7f, 0x7e);
  EXPECT_TRUE(std::isnan(fp8_e5m2_to_f32(f32_to_fp8_e5m2(NAN))));
  EXPECT_TRUE(std::isnan(fp8_e5m2_to_f32(f32_to_fp8_e5m2_satfinite(-NAN))));
  EXPECT_EQ(f32_to_fp8_e5m2(std::ldexp(1.0f, -17)), 0x00);
  EXPECT_EQ(f32_to_fp8_e5m2(std::ldexp(1.5f, -17)), 0x01);
}

// A sweep over f32 bit patterns (every 997th, covering all exponents) plus random values, each
// compared with the nearest-value search of the reference.
TEST(Fp8Test, SweepMatchesNearestValueReference) {
  const testing::ReferenceTable e4m3(kE4M3), e5m2(kE5M2);
  auto check = [&](float f) {
    if (std::isnan(f)) return;
    ASSERT_EQ(f32_to_fp8_e4m3(f), reference_encode(e4m3, kE4M3, f, Overflow::kSaturate, 0)) << f;
    ASSERT_EQ(f32_to_fp8_e5m2(f), reference_encode(e5m2, kE5M2, f, Overflow::kInfinity, 0x7c)) << f;
    ASSERT_EQ(f32_to_fp8_e5m2_satfinite(f), reference_encode(e5m2, kE5M2, f, Overflow::kSaturate, 0)) << f;
  };
  for (uint64_t u = 0; u <= 0xffffffffu; u += 997 * 101) check(f32_from_bits(uint32_t(u)));
  // Dense near the formats' ranges: every 1709th pattern of |x| in [2^-20, 2^17), both signs.
  for (uint32_t u = 0x35800000u; u < 0x48000000u; u += 1709) {
    check(f32_from_bits(u));
    check(-f32_from_bits(u));
  }
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 100.0f);
  for (int i = 0; i < 20000; ++i) check(nd(rng));
}

}  // namespace
}  // namespace tidal
