// Seeds and instance ids for RL runs: one 64-bit mixing function (splitmix64's finaliser), so
// task instances, sampling seeds and demonstrations derive from (run seed, ids) the same way
// everywhere.
#pragma once

#include <cstdint>

namespace tidal::rollout {

inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace tidal::rollout
