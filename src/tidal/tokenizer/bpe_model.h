// BpeModel: the "model" section of a byte-level BPE tokenizer.json (type "BPE", vocab + merges).
// Words are given as raw bytes; each byte starts as its own symbol, then pairs are merged by rank
// exactly as tokenizers' Word::merge_all does (lowest rank first, leftmost first among equals).
// Immutable after from_json(); encode_word() is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tidal/core/status.h"

namespace tidal {

// Hash for unordered_map<std::string, V> that can be probed with a string_view (no copy).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // `field` names the JSON path for error messages ("model"). Rejects what this slice does not
  // implement (dropout, continuing_subword_prefix, end_of_word_suffix) with kUnimplemented.
  static Expected<BpeModel> from_json(const nlohmann::json& j, const std::string& field);

  // Appends the ids of `word` (raw bytes, one pre-tokenized piece) to `out`.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // Token strings as written in the vocab ("Ġhello"), indexed by id; "" where an id is unused.
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }

 private:
  struct MergeRule {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::optional<MergeRule> find_merge(int32_t a, int32_t b) const {
    auto it = merges_.find(pair_key(a, b));
    if (it == merges_.end()) return std::nullopt;
    return it->second;
  }

  std::vector<std::string> id_to_token_;
  StringIdMap bytes_to_id_;                     // raw bytes of each token -> id (ignore_merges)
  std::array<int32_t, 256> byte_to_id_{};       // -1 where the byte has no token
  std::unordered_map<uint64_t, MergeRule> merges_;
  std::optional<int32_t> unk_id_;
  bool ignore_merges_ = false;
};

}  // namespace tidal
