// Regex: a compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) used by the
// pre-tokenizers. Immutable after compile(); find_all() may be called from many threads at once.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "tidal/core/status.h"

struct pcre2_real_code_8;

namespace tidal {

class Regex {
 public:
  // Compiles `pattern` (PCRE2 syntax, which accepts the Oniguruma patterns of tokenizer.json:
  // \p{L}, \p{N}, (?i:...), (?!...)). With `literal`, the pattern is matched as plain text.
  static Expected<Regex> compile(std::string_view pattern, bool literal = false);

  // Byte ranges [start, end) of the non-overlapping, non-empty matches in `text`, left to right.
  // `text` must be valid UTF-8. On a matcher failure (resource limits) the search stops early and
  // the ranges found so far are returned.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  explicit Regex(std::shared_ptr<pcre2_real_code_8> code) : code_(std::move(code)) {}
  std::shared_ptr<pcre2_real_code_8> code_;
};

}  // namespace tidal
