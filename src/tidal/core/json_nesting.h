// A guard for JSON from outside the process (HTTP bodies, model output): how deeply its arrays and
// objects nest. nlohmann::json parses any depth without recursion, but copying, comparing or
// dumping a parsed value recurses once per level, so a body of 100,000 '[' would overflow the stack
// far from the parser. Callers reject such text before parsing it (kMaxJsonNesting is far above any
// real request: OpenAI tool schemas nest a few tens of levels).
#pragma once

#include <cstddef>
#include <string_view>

namespace tidal {

inline constexpr int kMaxJsonNesting = 128;

// Whether `text` opens more than `limit` arrays/objects at once. Brackets inside JSON strings are
// not counted (escapes are honoured); the text need not be valid JSON. O(size), stops early.
bool json_nesting_exceeds(std::string_view text, int limit = kMaxJsonNesting);

}  // namespace tidal
