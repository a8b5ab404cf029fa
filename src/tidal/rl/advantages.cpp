#include "tidal/rl/advantages.h"

#include <cmath>
#include <map>
#include <string>

namespace tidal::rl {

Expected<std::vector<float>> group_advantages(const std::vector<float>& rewards, const std::vector<int32_t>& groups,
                                              bool scale_by_std, double eps) {
  if (rewards.size() != groups.size()) {
    return invalid_argument("group_advantages: " + std::to_string(rewards.size()) + " rewards but " +
                            std::to_string(groups.size()) + " group ids");
  }
  struct Acc {
    double sum = 0, sum_sq = 0;
    int64_t n = 0;
  };
  std::map<int32_t, Acc> acc;
  for (size_t i = 0; i < rewards.size(); ++i) {
    if (!std::isfinite(rewards[i])) {
      return invalid_argument("group_advantages: reward of sample " + std::to_string(i) + " is not finite");
    }
    Acc& a = acc[groups[i]];
    a.sum += rewards[i];
    a.n += 1;
  }
  for (size_t i = 0; i < rewards.size(); ++i) {
    Acc& a = acc[groups[i]];
    const double d = rewards[i] - a.sum / double(a.n);
    a.sum_sq += d * d;  // two-pass variance: no cancellation
  }
  std::vector<float> out(rewards.size());
  for (size_t i = 0; i < rewards.size(); ++i) {
    const Acc& a = acc[groups[i]];
    if (a.n < 2) {
      out[i] = 0.0f;
      continue;
    }
    const double centred = rewards[i] - a.sum / double(a.n);
    const double std = std::sqrt(a.sum_sq / double(a.n - 1));
    out[i] = float(scale_by_std ? centred / (std + eps) : centred);
  }
  return out;
}

}  // namespace tidal::rl
