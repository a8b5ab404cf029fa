// Decoder: the "decoder" section of tokenizer.json. Either ByteLevel (tokens spelled in the
// byte-level alphabet; the joined bytes become text, invalid UTF-8 -> U+FFFD), or a chain of
// SentencePiece-style steps applied to the token strings in order, as tokenizers' decode_chain:
// Replace (String/Regex -> content), ByteFallback (<0xXX> runs -> bytes; an invalid run -> one
// U+FFFD per byte), Fuse, Strip (content, start, stop), Metaspace (replacement, prepend_scheme).
// Immutable after from_json(); thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tidal/core/status.h"
#include "tidal/tokenizer/regex.h"

namespace tidal {

class Decoder {
 public:
  // `field` names the JSON path for error messages ("decoder"). A null decoder joins the tokens
  // with spaces, as tokenizers does.
  static Expected<Decoder> from_json(const nlohmann::json& j, const std::string& field);

  bool is_byte_level() const { return byte_level_; }

  // The text of `tokens` (vocab spellings, special tokens already removed) for a chain decoder.
  std::string decode_chain(std::vector<std::string> tokens) const;

  // Streaming: the bytes token `token` contributes when it is not the first token of the text
  // (Replace, Metaspace and single <0xXX> bytes applied).
  std::string stream_bytes(std::string_view token) const;
  // Streaming: the first token's text, as decode_chain would produce it for a text of one token
  // before Strip (Metaspace drops its leading replacement characters).
  std::string stream_first_bytes(std::string_view token) const;
  // Streaming: Strip's leading characters to remove from the start of the text (count, char).
  size_t strip_start() const { return strip_start_; }
  const std::string& strip_content() const { return strip_content_; }

 private:
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind = Kind::kFuse;
    std::optional<Regex> regex;  // Replace
    std::string text;            // Replace: content; Strip: content; Metaspace: replacement
    size_t start = 0, stop = 0;  // Strip
    bool prepend = true;         // Metaspace: prepend_scheme != never
  };
  static Status add_steps(const nlohmann::json& j, const std::string& field, Decoder& out);

  bool byte_level_ = false;
  bool is_null_ = false;
  std::vector<Step> steps_;
  size_t strip_start_ = 0;
  std::string strip_content_;
};

}  // namespace tidal
