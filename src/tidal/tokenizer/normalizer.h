// Normalizer: the "normalizer" section of tokenizer.json, as a list of steps applied in order.
// Supported: null, NFC, NFD, NFKC, NFKD (ICU), Lowercase, Prepend, Replace (String or Regex
// pattern), and a Sequence of these (what the GPT-2, Qwen, Llama-3, DeepSeek-V3 and Llama-2
// SentencePiece-style tokenizers use). Immutable after from_json(); thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tidal/core/status.h"
#include "tidal/tokenizer/regex.h"

namespace tidal {

class Normalizer {
 public:
  enum class Form { kNfc, kNfd, kNfkc, kNfkd };

  // `field` names the JSON path for error messages ("normalizer").
  static Expected<Normalizer> from_json(const nlohmann::json& j, const std::string& field);

  bool is_identity() const { return steps_.empty(); }
  // Normalizes valid UTF-8 `text`.
  std::string apply(std::string_view text) const;

 private:
  enum class Kind { kForm, kLowercase, kPrepend, kReplace };
  struct Step {
    Kind kind = Kind::kForm;
    Form form = Form::kNfc;
    std::string text;            // Prepend: the prefix; Replace: the replacement
    std::optional<Regex> regex;  // Replace: the pattern
  };
  static Status add_steps(const nlohmann::json& j, const std::string& field, Normalizer& out);

  std::vector<Step> steps_;
};

}  // namespace tidal
