// Group-normalised advantages (GRPO): each sample's reward against the other samples of its
// prompt. Plain C++ (no torch).
#pragma once

#include <cstdint>
#include <vector>

#include "tidal/core/status.h"

namespace tidal::rl {

// A_i = (r_i - mean_g) / (std_g + eps) over the samples of i's group g, std the unbiased sample
// standard deviation (n - 1); with scale_by_std = false, A_i = r_i - mean_g. A group of one
// sample has no baseline: its advantage is 0. rewards and groups must have the same length.
Expected<std::vector<float>> group_advantages(const std::vector<float>& rewards, const std::vector<int32_t>& groups,
                                              bool scale_by_std, double eps);

}  // namespace tidal::rl
