// jinja::tokenize: template source -> tokens, with the whitespace control of the reference
// (@huggingface/jinja with lstrip_blocks and trim_blocks, as transformers renders chat templates):
// one trailing newline is dropped, `{%-`/`-%}` (and `{{-`, `-}}`, `{#-`, `-#}`) strip whitespace,
// `{% generation %}` markers are removed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tidal::jinja {

enum class TokenType {
  kText, kNumber, kString, kIdentifier, kEquals, kOpenParen, kCloseParen, kOpenStatement,
  kCloseStatement, kOpenExpression, kCloseExpression, kOpenBracket, kCloseBracket, kOpenCurly,
  kCloseCurly, kComma, kDot, kColon, kPipe, kAdditive, kMultiplicative, kPower, kComparison,
  kUnary, kComment,
};

struct Token {
  TokenType type;
  std::string value;
  size_t line;  // 1-based line in the preprocessed source
};

// Throws jinja::Error on a lexical error (unterminated string or comment, bad escape, stray char).
std::vector<Token> tokenize(std::string_view source);

// JavaScript's \s (what the reference trims): ASCII whitespace, NBSP, the Unicode spaces, BOM.
bool is_js_space(uint32_t cp);
// Trims is_js_space code points (JS String#trim / trimStart / trimEnd); text is valid UTF-8.
std::string_view js_trim(std::string_view text, bool start, bool end);

}  // namespace tidal::jinja
