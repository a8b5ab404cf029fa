// AddedVocabulary: the "added_tokens" of tokenizer.json. They are found in the text before the
// model runs (leftmost-longest, as tokenizers' Aho-Corasick pass does), honouring single_word,
// lstrip and rstrip. Tokens with normalized=false are matched on the raw text, the others on the
// normalized text. Immutable after from_json(); split() is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tidal/core/status.h"

namespace tidal {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

class AddedVocabulary {
 public:
  // A span of the text: an added token (id >= 0) or text for the model (id == -1).
  struct Segment {
    size_t start;
    size_t end;
    int32_t id;
  };

  // `field` names the JSON path for error messages ("added_tokens"). A missing array is empty.
  static Expected<AddedVocabulary> from_json(const nlohmann::json& j, const std::string& field);

  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Appends the segments of valid UTF-8 `text` to `out`, matching only tokens whose `normalized`
  // flag equals `normalized`. Empty model segments are omitted.
  void split(std::string_view text, bool normalized, std::vector<Segment>& out) const;

 private:
  std::vector<AddedToken> tokens_;
  // Per first byte: indices into tokens_, longest content first.
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace tidal
