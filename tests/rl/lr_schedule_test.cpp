#include "tidal/rl/lr_schedule.h"

#include <gtest/gtest.h>

namespace tidal::rl {
namespace {

TEST(LrSchedule, WarmupThenConstant) {
  OptimizerConfig c;
  c.lr = 1e-3;
  c.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.25e-3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 3), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 100), 1e-3);
}

TEST(LrSchedule, Cosine) {
  OptimizerConfig c;
  c.lr = 2.0;
  c.schedule = LrSchedule::kCosine;
  c.warmup_steps = 2;
  c.total_steps = 12;
  c.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(c, 1), 2.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 2), 2.0);                   // decay starts at its peak
  EXPECT_NEAR(learning_rate(c, 7), 2.0 * (0.1 + 0.9 * 0.5), 1e-12);  // half way: cos = 0
  EXPECT_NEAR(learning_rate(c, 12), 0.2, 1e-12);
  EXPECT_NEAR(learning_rate(c, 50), 0.2, 1e-12);                // held at the floor
}

}  // namespace
}  // namespace tidal::rl
