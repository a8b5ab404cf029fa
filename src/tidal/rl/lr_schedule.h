// Learning-rate schedule: linear warm-up, then constant or cosine decay (trainer_config.h).
#pragma once

#include <cstdint>

#include "tidal/rl/trainer_config.h"

namespace tidal::rl {

// The LR of 0-based optimizer step `step`:
//   step < warmup:  lr * (step + 1) / warmup
//   constant:       lr
//   cosine:         lr * (m + (1 - m) * (1 + cos(pi * p)) / 2),  p = (step - warmup) / (total - warmup)
//                   clamped to [0, 1], m = min_lr_ratio
double learning_rate(const OptimizerConfig& config, int64_t step);

}  // namespace tidal::rl
