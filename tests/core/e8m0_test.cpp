#include "tidal/core/e8m0.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tidal {
namespace {

TEST(E8M0Test, DecodesEveryCode) {
  for (int c = 0; c < 255; ++c) EXPECT_EQ(double(e8m0_to_f32(uint8_t(c))), std::ldexp(1.0, c - 127)) << c;
  EXPECT_TRUE(std::isnan(e8m0_to_f32(0xff)));
}

TEST(E8M0Test, FloorConversionIsExactOnPowersAndFloorsBetween) {
  for (int c = 0; c < 255; ++c) {
    const float p = e8m0_to_f32(uint8_t(c));
    EXPECT_EQ(f32_to_e8m0_floor(p), c) << c;
    EXPECT_EQ(e8m0_from_exponent(c - 127), c) << c;
    if (c < 254) {
      // Everything in [2^e, 2^(e+1)) floors to 2^e.
      EXPECT_EQ(f32_to_e8m0_floor(std::nextafter(2.0f * p, 0.0f)), c) << c;
      EXPECT_EQ(f32_to_e8m0_floor(1.5f * p), c) << c;
    }
  }
  EXPECT_EQ(f32_to_e8m0_floor(0.0f), 0);
  EXPECT_EQ(f32_to_e8m0_floor(f32_from_bits(1)), 0);  // below 2^-127
  EXPECT_EQ(f32_to_e8m0_floor(INFINITY), 254);
  EXPECT_EQ(f32_to_e8m0_floor(std::numeric_limits<float>::max()), 254);
  EXPECT_EQ(f32_to_e8m0_floor(NAN), 0xff);
  EXPECT_EQ(f32_to_e8m0_floor(-1.0f), 0xff);
  EXPECT_EQ(e8m0_from_exponent(-500), 0);
  EXPECT_EQ(e8m0_from_exponent(500), 254);
}

}  // namespace
}  // namespace tidal
