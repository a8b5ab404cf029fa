// BpeModel: the "model" section of a BPE tokenizer.json (type "BPE", vocab + merges).
// Byte-level vocabularies (GPT-2, Qwen, Llama-3): each byte of a word starts as its own symbol.
// SentencePiece-style vocabularies (Llama-2: "▁" for spaces): each character starts as its own
// symbol; a character not in the vocab becomes its <0xXX> byte tokens (byte_fallback) or the unk
// token (consecutive unks fused with fuse_unk). Then pairs are merged by rank exactly as
// tokenizers' Word::merge_all does (lowest rank first, leftmost first among equals).
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
  // `field` names the JSON path for error messages ("model"). `byte_level`: the vocab is spelled in
  // the byte-level alphabet (a ByteLevel pre-tokenizer is present). Rejects what is not
  // implemented (dropout, continuing_subword_prefix, end_of_word_suffix) with kUnimplemented.
  static Expected<BpeModel> from_json(const nlohmann::json& j, const std::string& field, bool byte_level);

  // Appends the ids of `word` (one pre-tokenized piece: raw bytes, or valid UTF-8 text for a
  // SentencePiece-style vocab) to `out`.
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
  StringIdMap bytes_to_id_;                     // raw bytes (byte-level) or text of each token -> id
  std::array<int32_t, 256> byte_to_id_{};       // byte-level: the token of each byte, -1 if none
  std::array<int32_t, 256> byte_fallback_id_{}; // byte_fallback: the id of <0xXX>, -1 if none
  bool byte_level_ = true;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  std::unordered_map<uint64_t, MergeRule> merges_;
  std::optional<int32_t> unk_id_;
  bool ignore_merges_ = false;
};

}  // namespace tidal
