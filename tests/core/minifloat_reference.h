// An independent, slow reference for the small float formats, used by fp8_test/fp4_test: values
// come from std::ldexp on the bit fields, and rounding is a nearest-value search over the table
// of every finite code (ties to the even code), not bit manipulation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace tidal::testing {

struct MinifloatSpec {
  int exp_bits, man_bits, bias;
  uint32_t max_code;  // largest finite magnitude code
};

inline double reference_value(const MinifloatSpec& s, uint32_t mag_code) {
  const uint32_t e = mag_code >> s.man_bits, m = mag_code & ((1u << s.man_bits) - 1u);
  if (e == 0) return std::ldexp(double(m), 1 - s.bias - s.man_bits);
  return std::ldexp(1.0 + std::ldexp(double(m), -s.man_bits), int(e) - s.bias);
}

// Result of rounding |x|: a magnitude code in [0, max_code], or overflow (rounded past the top).
struct RefRound {
  bool overflow;
  uint32_t code;
};

// Every finite magnitude of a format, plus one "virtual" value past the top (max + its quantum),
// which decides where overflow starts. Build once; rounding is a binary search.
class ReferenceTable {
 public:
  explicit ReferenceTable(const MinifloatSpec& s) : s_(s), v_(s.max_code + 2) {
    for (uint32_t c = 0; c <= s.max_code; ++c) v_[c] = reference_value(s, c);
    v_[s.max_code + 1] = v_[s.max_code] + (v_[s.max_code] - v_[s.max_code - 1]);
  }
  RefRound round_abs(double a) const {
    if (a >= v_[s_.max_code + 1]) return {true, 0};
    const auto it = std::upper_bound(v_.begin(), v_.end(), a);
    const uint32_t hi = uint32_t(it - v_.begin());  // v[hi - 1] <= a < v[hi]
    const uint32_t lo = hi - 1;
    const double dl = a - v_[lo], dh = v_[hi] - a;
    const uint32_t c = dl < dh ? lo : dh < dl ? hi : ((lo & 1u) ? hi : lo);
    if (c > s_.max_code) return {true, 0};
    return {false, c};
  }

 private:
  MinifloatSpec s_;
  std::vector<double> v_;
};

}  // namespace tidal::testing
