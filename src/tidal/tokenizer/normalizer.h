// Normalizer: the "normalizer" section of tokenizer.json. Supported: null, NFC, NFD, NFKC, NFKD
// (ICU) and a Sequence of those. Immutable after from_json(); thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tidal/core/status.h"

namespace tidal {

class Normalizer {
 public:
  enum class Form { kNfc, kNfd, kNfkc, kNfkd };

  // `field` names the JSON path for error messages ("normalizer").
  static Expected<Normalizer> from_json(const nlohmann::json& j, const std::string& field);

  bool is_identity() const { return forms_.empty(); }
  // Normalizes valid UTF-8 `text`.
  std::string apply(std::string_view text) const;

 private:
  std::vector<Form> forms_;
};

}  // namespace tidal
