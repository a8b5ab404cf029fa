// UTF-8 helpers shared by encode (input sanitising) and decode (lossy output, streaming).
//
// The lossy rules are those of Rust's String::from_utf8_lossy (and WHATWG): each maximal invalid
// subsequence becomes one U+FFFD. Hugging Face tokenizers decodes with exactly these rules, so a
// decode built on them matches the reference byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tidal::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// True when `text` is entirely valid UTF-8.
bool is_valid(std::string_view text);

// Appends `bytes` to `out`, replacing each maximal invalid subsequence with U+FFFD.
// When `hold_incomplete` is true, a trailing sequence that is a valid prefix of a code point (more
// bytes could complete it) is not appended. Returns the number of bytes of `bytes` consumed; the
// rest (at most 3 bytes) is the held-back tail.
size_t append_lossy(std::string_view bytes, std::string& out, bool hold_incomplete = false);

// Decodes the code point at text[pos] (text must be valid UTF-8 there); advances pos.
uint32_t next_code_point(std::string_view text, size_t& pos);

// Decodes the code point that ends at text[end - 1] (valid UTF-8); returns its first byte index.
size_t prev_code_point_start(std::string_view text, size_t end);

// Appends the UTF-8 encoding of code point `cp` to `out`.
void append_code_point(uint32_t cp, std::string& out);

}  // namespace tidal::utf8
