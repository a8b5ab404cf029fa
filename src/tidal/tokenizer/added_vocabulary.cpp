#include "tidal/tokenizer/added_vocabulary.h"

#include <algorithm>

#include <unicode/uchar.h>

#include <nlohmann/json.hpp>

#include "tidal/tokenizer/token_ids.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal {
namespace {

bool is_whitespace(uint32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

// Rust's char::is_alphanumeric: Alphabetic or a Numeric general category (Nd, Nl, No).
bool is_alphanumeric(uint32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC)) return true;
  const int8_t type = u_charType(c);
  return type == U_DECIMAL_DIGIT_NUMBER || type == U_LETTER_NUMBER || type == U_OTHER_NUMBER;
}

}  // namespace

Expected<AddedVocabulary> AddedVocabulary::from_json(const nlohmann::json& j, const std::string& field) {
  AddedVocabulary v;
  if (j.is_null()) return v;
  if (!j.is_array()) return invalid_argument(field + ": expected an array");
  for (size_t i = 0; i < j.size(); ++i) {
    const nlohmann::json& t = j[i];
    const std::string where = field + "[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0) {
      return invalid_argument(where + ".id: expected a non-negative integer");
    }
    if (t["id"].get<int64_t>() > kMaxTokenId) {
      return invalid_argument(where + ".id: " + t["id"].dump() + " is above the largest supported token id " +
                              std::to_string(kMaxTokenId));
    }
    if (!t.contains("content") || !t["content"].is_string() || t["content"].get<std::string>().empty()) {
      return invalid_argument(where + ".content: expected a non-empty string");
    }
    AddedToken token;
    token.id = t["id"].get<int32_t>();
    token.content = t["content"].get<std::string>();
    if (!utf8::is_valid(token.content)) return invalid_argument(where + ".content: invalid UTF-8");
    token.special = t.value("special", false);
    token.single_word = t.value("single_word", false);
    token.lstrip = t.value("lstrip", false);
    token.rstrip = t.value("rstrip", false);
    token.normalized = t.value("normalized", !token.special);
    v.tokens_.push_back(std::move(token));
  }
  for (uint32_t i = 0; i < v.tokens_.size(); ++i) {
    v.by_first_byte_[static_cast<unsigned char>(v.tokens_[i].content[0])].push_back(i);
  }
  for (auto& list : v.by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
      return v.tokens_[a].content.size() > v.tokens_[b].content.size();
    });
  }
  return v;
}

void AddedVocabulary::split(std::string_view text, bool normalized, std::vector<Segment>& out) const {
  size_t start_offset = 0;  // end of the last emitted segment
  size_t pos = 0;           // where the search for the next match resumes
  while (pos < text.size()) {
    const AddedToken* match = nullptr;
    for (uint32_t index : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& t = tokens_[index];
      if (t.normalized == normalized && text.compare(pos, t.content.size(), t.content) == 0) {
        match = &t;
        break;
      }
    }
    if (match == nullptr) { ++pos; continue; }
    size_t start = pos, stop = pos + match->content.size();
    pos = stop;
    if (match->single_word) {
      bool start_space = true, stop_space = true;
      if (start > 0) {
        size_t p = utf8::prev_code_point_start(text, start);
        start_space = !is_alphanumeric(utf8::next_code_point(text, p));
      }
      if (stop < text.size()) {
        size_t p = stop;
        stop_space = !is_alphanumeric(utf8::next_code_point(text, p));
      }
      if (!start_space || !stop_space) continue;
    }
    if (match->lstrip) {
      size_t s = start;
      while (s > start_offset) {
        const size_t prev = utf8::prev_code_point_start(text, s);
        size_t p = prev;
        if (!is_whitespace(utf8::next_code_point(text, p))) break;
        s = prev;
      }
      start = s;
    }
    if (match->rstrip) {
      while (stop < text.size()) {
        size_t p = stop;
        if (!is_whitespace(utf8::next_code_point(text, p))) break;
        stop = p;
      }
      pos = stop;
    }
    if (start > start_offset) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, match->id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace tidal
