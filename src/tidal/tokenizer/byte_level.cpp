#include "tidal/tokenizer/byte_level.h"

#include <array>

#include "tidal/tokenizer/utf8.h"

namespace tidal::byte_level {
namespace {

struct Tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 512> from_cp{};  // every alphabet code point is < 0x144
  Tables() {
    from_cp.fill(-1);
    uint32_t shifted = 0;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_cp[b] = printable ? b : 256 + shifted++;
      from_cp[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables kTables;
  return kTables;
}

}  // namespace

uint32_t byte_to_code_point(uint8_t b) { return tables().to_cp[b]; }

std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8::append_code_point(tables().to_cp[b], out);
  return out;
}

bool decode(std::string_view token, std::string& out) {
  if (!utf8::is_valid(token)) return false;
  const size_t start = out.size();
  for (size_t pos = 0; pos < token.size();) {
    const uint32_t cp = utf8::next_code_point(token, pos);
    if (cp >= tables().from_cp.size() || tables().from_cp[cp] < 0) {
      out.resize(start);
      return false;
    }
    out.push_back(static_cast<char>(tables().from_cp[cp]));
  }
  return true;
}

}  // namespace tidal::byte_level
