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

  // Streaming: the text token `token` contributes on its own: the steps before the first Fuse
  // applied to it alone (Replace, Metaspace, a single <0xXX> byte, Strip). `first`: it is the first
  // token of the text (Metaspace drops its replacement characters there).
  std::string stream_token(std::string_view token, bool first) const;
  // Streaming: a Strip after the Fuse, applied to the whole text (content empty when there is none).
  struct TextStrip {
    std::string content;
    size_t start = 0, stop = 0;
  };
  const TextStrip& text_strip() const { return text_strip_; }
  // Whether streaming one token at a time reproduces decode_chain exactly (see plan_streaming).
  bool stream_exact() const { return stream_exact_; }

 private:
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind = Kind::kFuse;
    std::optional<Regex> regex;  // Replace: the pattern; Metaspace: the replacement, literally
    std::string text;            // Replace: content; Strip: content; Metaspace: replacement
    size_t start = 0, stop = 0;  // Strip
    bool prepend = true;         // Metaspace: prepend_scheme != never
  };
  static Status add_steps(const nlohmann::json& j, const std::string& field, Decoder& out);
  void plan_streaming();

  bool byte_level_ = false;
  bool is_null_ = false;
  std::vector<Step> steps_;
  TextStrip text_strip_;
  bool stream_exact_ = true;
};

}  // namespace tidal
