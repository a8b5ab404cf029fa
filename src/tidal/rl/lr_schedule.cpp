#include "tidal/rl/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace tidal::rl {

double learning_rate(const OptimizerConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * double(step + 1) / double(c.warmup_steps);
  if (c.schedule == LrSchedule::kConstant) return c.lr;
  const int64_t span = std::max<int64_t>(1, c.total_steps - c.warmup_steps);
  const double p = std::clamp(double(step - c.warmup_steps) / double(span), 0.0, 1.0);
  const double kPi = 3.14159265358979323846;
  return c.lr * (c.min_lr_ratio + (1.0 - c.min_lr_ratio) * 0.5 * (1.0 + std::cos(kPi * p)));
}

}  // namespace tidal::rl
