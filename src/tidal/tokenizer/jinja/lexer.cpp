#include "tidal/tokenizer/jinja/lexer.h"

#include <array>
#include <utility>

#include "tidal/tokenizer/jinja/value.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal::jinja {

bool is_js_space(uint32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
         cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}

std::string_view js_trim(std::string_view text, bool start, bool end) {
  size_t b = 0, e = text.size();
  if (start) {
    while (b < e) {
      size_t next = b;
      if (!is_js_space(utf8::next_code_point(text, next))) break;
      b = next;
    }
  }
  if (end) {
    while (e > b) {
      const size_t prev = utf8::prev_code_point_start(text, e);
      size_t p = prev;
      if (!is_js_space(utf8::next_code_point(text, p))) break;
      e = prev;
    }
  }
  return text.substr(b, e - b);
}

namespace {


// Code-point-aware whitespace test at text[pos]; sets `len` to the code point's byte length.
bool space_at(std::string_view text, size_t pos, size_t& len) {
  size_t p = pos;
  const uint32_t cp = utf8::next_code_point(text, p);
  len = p - pos;
  return is_js_space(cp);
}

bool is_line_start(std::string_view s, size_t i) {
  if (i == 0) return true;
  if (s[i - 1] == '\n' || s[i - 1] == '\r') return true;
  // U+2028 / U+2029 (E2 80 A8 / E2 80 A9) also end a line for JavaScript's multiline ^.
  return i >= 3 && s.substr(i - 3, 2) == "\xe2\x80" && (s[i - 1] == '\xa8' || s[i - 1] == '\xa9');
}

// The reference's preprocess(): trailing newline, lstrip_blocks, trim_blocks, generation tags.
std::string preprocess(std::string_view src) {
  if (!src.empty() && src.back() == '\n') src.remove_suffix(1);
  // lstrip_blocks: /^[ \t]*({[#%-])/gm -> "$1"
  std::string a;
  a.reserve(src.size());
  for (size_t i = 0; i < src.size();) {
    if (is_line_start(src, i)) {
      size_t j = i;
      while (j < src.size() && (src[j] == ' ' || src[j] == '\t')) ++j;
      if (j > i && j + 1 < src.size() && src[j] == '{' &&
          (src[j + 1] == '#' || src[j + 1] == '%' || src[j + 1] == '-')) {
        i = j;
      }
    }
    a += src[i++];
  }
  // trim_blocks: /([#%-]})\n/g -> "$1"
  std::string b;
  b.reserve(a.size());
  for (size_t i = 0; i < a.size();) {
    if (i + 2 < a.size() && (a[i] == '#' || a[i] == '%' || a[i] == '-') && a[i + 1] == '}' && a[i + 2] == '\n') {
      b += a[i];
      b += '}';
      i += 3;
      continue;
    }
    b += a[i++];
  }
  // /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs -> (lstrip ? "" : before) + (rstrip ? "" : after)
  if (b.find("generation") == std::string::npos) return b;
  std::string c;
  size_t copied = 0;
  for (size_t i = 0; i + 1 < b.size(); ++i) {
    if (b[i] != '{' || b[i + 1] != '%') continue;
    size_t j = i + 2, len = 0;
    const bool lstrip = j < b.size() && b[j] == '-';
    if (lstrip) ++j;
    while (j < b.size() && space_at(b, j, len)) j += len;
    if (b.compare(j, 3, "end") == 0) j += 3;
    if (b.compare(j, 10, "generation") != 0) continue;
    j += 10;
    while (j < b.size() && space_at(b, j, len)) j += len;
    const bool rstrip = j < b.size() && b[j] == '-';
    if (rstrip) ++j;
    if (b.compare(j, 2, "%}") != 0) continue;
    j += 2;
    size_t before = i;
    while (before > copied) {
      const size_t prev = utf8::prev_code_point_start(b, before);
      if (!space_at(b, prev, len)) break;
      before = prev;
    }
    size_t after = j;
    while (after < b.size() && space_at(b, after, len)) after += len;
    c.append(b, copied, before - copied);
    if (!lstrip) c.append(b, before, i - before);
    if (!rstrip) c.append(b, j, after - j);
    copied = after;
    i = after - 1;
  }
  c.append(b, copied, std::string::npos);
  return c;
}

struct Mapping {
  std::string_view seq;
  TokenType type;
};
constexpr std::array<Mapping, 27> kMappings = {{
    {"{%", TokenType::kOpenStatement}, {"%}", TokenType::kCloseStatement},
    {"{{", TokenType::kOpenExpression}, {"}}", TokenType::kCloseExpression},
    {"(", TokenType::kOpenParen}, {")", TokenType::kCloseParen},
    {"{", TokenType::kOpenCurly}, {"}", TokenType::kCloseCurly},
    {"[", TokenType::kOpenBracket}, {"]", TokenType::kCloseBracket},
    {",", TokenType::kComma}, {".", TokenType::kDot}, {":", TokenType::kColon}, {"|", TokenType::kPipe},
    {"<=", TokenType::kComparison}, {">=", TokenType::kComparison}, {"==", TokenType::kComparison},
    {"!=", TokenType::kComparison}, {"<", TokenType::kComparison}, {">", TokenType::kComparison},
    {"+", TokenType::kAdditive}, {"-", TokenType::kAdditive}, {"~", TokenType::kAdditive},
    {"**", TokenType::kPower}, {"*", TokenType::kMultiplicative}, {"//", TokenType::kMultiplicative},
    {"/", TokenType::kMultiplicative},
}};

bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  if (!utf8::is_valid(source)) fail("template is not valid UTF-8");
  const std::string src = preprocess(source);
  std::vector<Token> tokens;
  size_t pos = 0, line = 1, line_counted = 0, curly_depth = 0;
  auto at = [&](size_t i) -> char { return i < src.size() ? src[i] : '\0'; };
  auto starts = [&](std::string_view s) { return src.compare(pos, s.size(), s) == 0; };
  auto current_line = [&] {
    for (; line_counted < pos && line_counted < src.size(); ++line_counted) line += src[line_counted] == '\n';
    return line;
  };
  auto push = [&](TokenType type, std::string value) { tokens.push_back({type, std::move(value), current_line()}); };
  auto last_type = [&]() -> const TokenType* { return tokens.empty() ? nullptr : &tokens.back().type; };
  auto skip_space = [&] {
    size_t len = 0;
    while (pos < src.size() && space_at(src, pos, len)) pos += len;
  };
  auto strip_trailing = [&] {
    if (!tokens.empty() && tokens.back().type == TokenType::kText) {
      tokens.back().value = std::string(js_trim(tokens.back().value, false, true));
      if (tokens.back().value.empty()) tokens.pop_back();
    }
  };
  auto error = [&](const std::string& what) { fail("line " + std::to_string(current_line()) + ": " + what); };
  // Reads a string literal body up to `quote` with the reference's escapes.
  auto read_string = [&](char quote) {
    std::string s;
    while (true) {
      if (pos >= src.size()) error("unterminated string literal");
      const char c = src[pos];
      if (c == quote) break;
      if (c != '\\') { s += c; ++pos; continue; }
      if (++pos >= src.size()) error("unterminated string literal");
      const char e = src[pos++];
      if (e == 'x' || e == 'u') {
        const size_t n = e == 'x' ? 2 : 4;
        uint32_t cp = 0;
        for (size_t k = 0; k < n; ++k) {
          const int h = hex_value(at(pos + k));
          if (h < 0) error(std::string("invalid escape \\") + e + " in string literal");
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        pos += n;
        utf8::append_code_point(cp >= 0xd800 && cp <= 0xdfff ? 0xfffd : cp, s);
        continue;
      }
      switch (e) {
        case 'n': s += '\n'; break;
        case 't': s += '\t'; break;
        case 'r': s += '\r'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'v': s += '\v'; break;
        case '\'': s += '\''; break;
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        default: error(std::string("unsupported escape \\") + e + " in string literal");
      }
    }
    ++pos;  // closing quote
    return s;
  };

  while (pos < src.size()) {
    const TokenType* last = last_type();
    if (last == nullptr || *last == TokenType::kCloseStatement || *last == TokenType::kCloseExpression ||
        *last == TokenType::kComment) {
      const size_t start = pos;
      while (pos < src.size() && !(src[pos] == '{' && (at(pos + 1) == '%' || at(pos + 1) == '{' || at(pos + 1) == '#'))) {
        ++pos;
      }
      if (pos > start) {
        const size_t saved = pos;
        pos = start;
        push(TokenType::kText, src.substr(start, saved - start));
        pos = saved;
        continue;
      }
    }
    if (starts("{#")) {
      pos += 2;
      const bool strip_before = at(pos) == '-';
      if (strip_before) ++pos;
      const size_t end = src.find("#}", pos);
      if (end == std::string::npos) error("unterminated comment {# ... #}");
      std::string comment = src.substr(pos, end - pos);
      const bool strip_after = !comment.empty() && comment.back() == '-';
      if (strip_after) comment.pop_back();
      if (strip_before) strip_trailing();
      push(TokenType::kComment, comment);
      pos = end + 2;
      if (strip_after) skip_space();
      continue;
    }
    if (starts("{%-")) { strip_trailing(); push(TokenType::kOpenStatement, "{%"); pos += 3; continue; }
    if (starts("{{-")) { strip_trailing(); push(TokenType::kOpenExpression, "{{"); curly_depth = 0; pos += 3; continue; }
    skip_space();
    if (pos >= src.size()) break;
    if (starts("-%}")) { push(TokenType::kCloseStatement, "%}"); pos += 3; skip_space(); continue; }
    if (starts("-}}")) { push(TokenType::kCloseExpression, "}}"); pos += 3; skip_space(); continue; }
    const char c = src[pos];
    if (c == '-' || c == '+') {
      last = last_type();
      if (last == nullptr || *last == TokenType::kText) error(std::string("unexpected character '") + c + "'");
      if (*last != TokenType::kIdentifier && *last != TokenType::kNumber && *last != TokenType::kString &&
          *last != TokenType::kCloseParen && *last != TokenType::kCloseBracket) {
        ++pos;
        std::string num;
        while (is_digit(at(pos))) num += src[pos++];
        if (!num.empty() && at(pos) == '.' && is_digit(at(pos + 1))) {
          ++pos;
          num += '.';
          while (is_digit(at(pos))) num += src[pos++];
        }
        push(num.empty() ? TokenType::kUnary : TokenType::kNumber, std::string(1, c) + num);
        continue;
      }
    }
    bool matched = false;
    for (const Mapping& m : kMappings) {
      if (m.seq == "}}" && curly_depth > 0) continue;
      if (!starts(m.seq)) continue;
      push(m.type, std::string(m.seq));
      if (m.type == TokenType::kOpenExpression) curly_depth = 0;
      else if (m.type == TokenType::kOpenCurly) ++curly_depth;
      else if (m.type == TokenType::kCloseCurly && curly_depth > 0) --curly_depth;
      pos += m.seq.size();
      matched = true;
      break;
    }
    if (matched) continue;
    if (c == '%') { push(TokenType::kMultiplicative, "%"); ++pos; continue; }
    if (c == '=') { push(TokenType::kEquals, "="); ++pos; continue; }
    if (c == '\'' || c == '"') {
      ++pos;
      const size_t line_at = current_line();
      std::string s = read_string(c);
      tokens.push_back({TokenType::kString, std::move(s), line_at});
      continue;
    }
    if (is_digit(c)) {
      std::string num;
      while (is_digit(at(pos))) num += src[pos++];
      if ((tokens.empty() || tokens.back().type != TokenType::kDot) && at(pos) == '.' && is_digit(at(pos + 1))) {
        ++pos;
        num += '.';
        while (is_digit(at(pos))) num += src[pos++];
      }
      push(TokenType::kNumber, num);
      continue;
    }
    if (is_word(c)) {
      std::string word;
      while (is_word(at(pos))) word += src[pos++];
      push(TokenType::kIdentifier, word);
      continue;
    }
    size_t len = 1;
    size_t p = pos;
    utf8::next_code_point(src, p);
    len = p - pos;
    error("unexpected character '" + src.substr(pos, len) + "'");
  }
  return tokens;
}

}  // namespace tidal::jinja
