#include "tidal/core/fp4.h"

#include <gtest/gtest.h>

#include <cmath>

#include "minifloat_reference.h"

namespace tidal {
namespace {

constexpr testing::MinifloatSpec kE2M1{2, 1, 1, 0x7};

TEST(Fp4Test, DecodesEveryCode) {
  const float expected[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  for (uint32_t c = 0; c < 16; ++c) {
    const float f = fp4_e2m1_to_f32(uint8_t(c));
    EXPECT_EQ(f, (c & 8) ? -expected[c & 7] : expected[c & 7]) << c;
    EXPECT_EQ(double(std::fabs(f)), testing::reference_value(kE2M1, c & 7)) << c;
    EXPECT_EQ(std::signbit(f), (c & 8) != 0) << c;
    EXPECT_EQ(fp4_e2m1_to_f32(uint8_t(c | 0xf0)), f) << "upper bits must be ignored";
    EXPECT_EQ(f32_to_fp4_e2m1(f), c) << c;  // round trip (incl. -0 -> 0x8)
  }
}

TEST(Fp4Test, EveryMidpointRoundsToNearestEvenAndSaturates) {
  for (uint32_t c = 0; c <= 7; ++c) {
    const double lo = testing::reference_value(kE2M1, c);
    const double hi = c < 7 ? testing::reference_value(kE2M1, c + 1) : 8.0;  // 8: virtual next past 6
    const uint32_t hi_code = c < 7 ? c + 1 : 7;                              // satfinite
    const float mid = float((lo + hi) / 2);
    const uint32_t even = (c & 1u) ? hi_code : c;
    for (float sign : {1.0f, -1.0f}) {
      const uint8_t sb = sign < 0 ? 0x8 : 0;
      EXPECT_EQ(f32_to_fp4_e2m1(sign * mid), sb | even) << "mid after " << c;
      EXPECT_EQ(f32_to_fp4_e2m1(sign * std::nextafter(mid, 0.0f)), sb | c) << c;
      EXPECT_EQ(f32_to_fp4_e2m1(sign * std::nextafter(mid, INFINITY)), sb | hi_code) << c;
    }
  }
  // Named cases: 0.25 -> 0 (tie to even), 0.75 -> 1.0, 1.25 -> 1.0, 1.75 -> 2, 2.5 -> 2, 3.5 -> 4, 5 -> 4.
  EXPECT_EQ(f32_to_fp4_e2m1(0.25f), 0x0);
  EXPECT_EQ(f32_to_fp4_e2m1(0.75f), 0x2);
  EXPECT_EQ(f32_to_fp4_e2m1(1.25f), 0x2);
  EXPECT_EQ(f32_to_fp4_e2m1(1.75f), 0x4);
  EXPECT_EQ(f32_to_fp4_e2m1(2.5f), 0x4);
  EXPECT_EQ(f32_to_fp4_e2m1(3.5f), 0x6);
  EXPECT_EQ(f32_to_fp4_e2m1(5.0f), 0x6);
  EXPECT_EQ(f32_to_fp4_e2m1(-5.0001f), 0xf);
  EXPECT_EQ(f32_to_fp4_e2m1(1e30f), 0x7);
  EXPECT_EQ(f32_to_fp4_e2m1(-INFINITY), 0xf);
  EXPECT_EQ(f32_to_fp4_e2m1(NAN), 0x7);
  EXPECT_EQ(f32_to_fp4_e2m1(f32_from_bits(1)), 0x0);
}

TEST(Fp4Test, SweepMatchesNearestValueReference) {
  const testing::ReferenceTable table(kE2M1);
  for (uint64_t u = 0; u <= 0xffffffffu; u += 997 * 101) {
    const float f = f32_from_bits(uint32_t(u));
    if (std::isnan(f)) continue;
    const auto r = table.round_abs(std::fabs(double(f)));
    const uint8_t expect = uint8_t((std::signbit(f) ? 0x8 : 0) | (r.overflow || std::isinf(f) ? 7 : r.code));
    ASSERT_EQ(f32_to_fp4_e2m1(f), expect) << f;
  }
}

TEST(Fp4Test, PackingPutsEvenElementInLowNibble) {
  const uint8_t b = fp4_pack(0x3, 0xc);
  EXPECT_EQ(b, 0xc3);
  EXPECT_EQ(fp4_unpack(b, 0), 0x3);
  EXPECT_EQ(fp4_unpack(b, 1), 0xc);
  EXPECT_EQ(fp4_unpack(b, 6), 0x3);
}

}  // namespace
}  // namespace tidal
