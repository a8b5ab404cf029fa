#include "tidal/rollout/trajectory.h"

#include <algorithm>
#include <limits>

namespace tidal::rollout {

uint64_t Trajectory::min_version() const {
  if (versions.empty()) return 0;
  return *std::min_element(versions.begin(), versions.end());
}

uint64_t Trajectory::max_version() const {
  if (versions.empty()) return 0;
  return *std::max_element(versions.begin(), versions.end());
}

uint64_t Group::min_version() const {
  uint64_t v = std::numeric_limits<uint64_t>::max();
  for (const auto& t : samples) v = std::min(v, t.min_version());
  return samples.empty() ? 0 : v;
}

bool Group::uniform_reward() const {
  for (const auto& t : samples)
    if (t.reward != samples.front().reward) return false;
  return true;
}

double Group::mean_reward() const {
  if (samples.empty()) return 0;
  double s = 0;
  for (const auto& t : samples) s += t.reward;
  return s / double(samples.size());
}

}  // namespace tidal::rollout
