#include "tidal/tokenizer/utf8.h"

namespace tidal::utf8 {
namespace {

enum class SeqKind { kValid, kInvalid, kIncomplete };

// Examines the sequence starting at s[i]. Returns its kind and sets `len` to the bytes it spans:
// the whole code point (kValid), the maximal invalid prefix to replace by one U+FFFD (kInvalid,
// len >= 1), or the valid prefix cut off by the end of input (kIncomplete).
SeqKind examine(const unsigned char* s, size_t n, size_t i, size_t& len) {
  const unsigned char b = s[i];
  if (b < 0x80) { len = 1; return SeqKind::kValid; }
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  if (b >= 0xC2 && b <= 0xDF) { need = 1; }
  else if (b == 0xE0) { need = 2; lo = 0xA0; }
  else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) { need = 2; }
  else if (b == 0xED) { need = 2; hi = 0x9F; }
  else if (b == 0xF0) { need = 3; lo = 0x90; }
  else if (b >= 0xF1 && b <= 0xF3) { need = 3; }
  else if (b == 0xF4) { need = 3; hi = 0x8F; }
  else { len = 1; return SeqKind::kInvalid; }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= n) { len = k; return SeqKind::kIncomplete; }
    const unsigned char c = s[i + k];
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (c < l || c > h) { len = k; return SeqKind::kInvalid; }
  }
  len = need + 1;
  return SeqKind::kValid;
}

}  // namespace

bool is_valid(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    if (s[i] < 0x80) { ++i; continue; }
    size_t len = 0;
    if (examine(s, n, i, len) != SeqKind::kValid) return false;
    i += len;
  }
  return true;
}

size_t append_lossy(std::string_view bytes, std::string& out, bool hold_incomplete) {
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    size_t run = i;  // copy runs of valid text in one append
    size_t len = 0;
    SeqKind kind = SeqKind::kValid;
    while (run < n && (kind = examine(s, n, run, len)) == SeqKind::kValid) run += len;
    out.append(bytes.data() + i, run - i);
    i = run;
    if (i >= n) break;
    if (kind == SeqKind::kIncomplete && hold_incomplete) return i;
    out.append(kReplacement);
    i += len;
  }
  return n;
}

uint32_t next_code_point(std::string_view text, size_t& pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char b = s[pos];
  if (b < 0x80) { ++pos; return b; }
  if (b < 0xE0) { uint32_t cp = ((b & 0x1Fu) << 6) | (s[pos + 1] & 0x3Fu); pos += 2; return cp; }
  if (b < 0xF0) {
    uint32_t cp = ((b & 0x0Fu) << 12) | ((s[pos + 1] & 0x3Fu) << 6) | (s[pos + 2] & 0x3Fu);
    pos += 3;
    return cp;
  }
  uint32_t cp = ((b & 0x07u) << 18) | ((s[pos + 1] & 0x3Fu) << 12) | ((s[pos + 2] & 0x3Fu) << 6) |
                (s[pos + 3] & 0x3Fu);
  pos += 4;
  return cp;
}

size_t prev_code_point_start(std::string_view text, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  return i;
}

void append_code_point(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace tidal::utf8
