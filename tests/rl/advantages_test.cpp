// Group-normalised advantages and the LR schedule are plain functions: checked against values
// worked out by hand.
#include "tidal/rl/advantages.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tidal::rl {
namespace {

TEST(GroupAdvantages, NormalisesWithinEachGroup) {
  // Group 0: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(1/3); group 7: 2, 4 -> mean 3, std sqrt(2).
  auto a = group_advantages({1, 0, 2, 0, 1, 4}, {0, 0, 7, 0, 0, 7}, true, 0.0);
  ASSERT_TRUE(a);
  const double s0 = std::sqrt(1.0 / 3.0), s7 = std::sqrt(2.0);
  EXPECT_NEAR((*a)[0], 0.5 / s0, 1e-6);
  EXPECT_NEAR((*a)[1], -0.5 / s0, 1e-6);
  EXPECT_NEAR((*a)[2], -1.0 / s7, 1e-6);
  EXPECT_NEAR((*a)[5], 1.0 / s7, 1e-6);
}

TEST(GroupAdvantages, MeanOnlyAndDegenerateGroups) {
  auto a = group_advantages({1, 3, 5, 5, 9}, {0, 0, 1, 1, 2}, false, 1e-6);
  ASSERT_TRUE(a);
  EXPECT_FLOAT_EQ((*a)[0], -1.0f);
  EXPECT_FLOAT_EQ((*a)[1], 1.0f);
  EXPECT_FLOAT_EQ((*a)[2], 0.0f);  // equal rewards: nothing to learn
  EXPECT_FLOAT_EQ((*a)[4], 0.0f);  // a group of one has no baseline
  auto b = group_advantages({5, 5}, {0, 0}, true, 1e-6);
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)[0], 0.0f);  // std 0: eps keeps it finite
}

TEST(GroupAdvantages, RejectsBadInput) {
  EXPECT_FALSE(group_advantages({1, 2}, {0}, true, 1e-6));
  auto a = group_advantages({1, NAN}, {0, 0}, true, 1e-6);
  ASSERT_FALSE(a);
  EXPECT_NE(a.status().message().find("sample 1"), std::string::npos);
}

}  // namespace
}  // namespace tidal::rl
