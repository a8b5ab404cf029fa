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

// A small deterministic generator for drawing task instances (splitmix64 sequence).
struct SplitMix {
  uint64_t s;
  uint64_t next() { return s = mix64(s); }
  uint64_t below(uint64_t n) { return next() % n; }  // n small: the bias is negligible
  int64_t in(int64_t lo, int64_t hi) { return lo + int64_t(below(uint64_t(hi - lo + 1))); }
};

// The generator of instance `instance` of the split numbered `salt` (tasks keep splits disjoint
// by giving each its own salt).
inline SplitMix instance_rng(uint64_t instance, uint64_t salt) {
  return SplitMix{mix64(instance ^ (salt * 0x632be59bd9b4e019ull))};
}

}  // namespace tidal::rollout
