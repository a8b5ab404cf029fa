// The GPT-2 byte-level alphabet: each of the 256 byte values is shown as one printable code point
// ("bytes_to_unicode" in GPT-2's encoder.py). Byte-level BPE vocabularies spell their tokens in it:
// "Ġhello" is the bytes " hello".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tidal::byte_level {

// The code point that stands for byte `b`.
uint32_t byte_to_code_point(uint8_t b);

// The UTF-8 text of `bytes` in the byte-level alphabet ("\x20hi" -> "Ġhi").
std::string encode(std::string_view bytes);

// Appends the raw bytes spelled by `token` to `out`. Returns false (appending nothing) when some
// code point of `token` is not in the alphabet or `token` is not valid UTF-8.
bool decode(std::string_view token, std::string& out);

}  // namespace tidal::byte_level
