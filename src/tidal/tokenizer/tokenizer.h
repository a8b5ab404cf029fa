// Tokenizer: text <-> token ids for a Hugging Face tokenizer.json: byte-level BPE (GPT-2, Qwen2/3,
// Llama-3, DeepSeek-V3) and SentencePiece-style BPE with byte fallback (Llama-2: "▁", <0xXX>).
// See docs/tokenizer.md for what is supported.
//
// Thread-safety: a loaded Tokenizer is immutable; encode/decode may run concurrently. Copies are
// cheap (they share the loaded tables).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/core/status.h"

namespace tidal {

class Decoder;
class IncrementalDecoder;

class Tokenizer {
 public:
  // `path` is a model folder (reads tokenizer.json, and tokenizer_config.json when present) or a
  // tokenizer.json file (then tokenizer_config.json beside it is read when present).
  // tokenizer_config.json gives bos_token, eos_token and add_bos_token.
  // Errors: kNotFound (no tokenizer.json), kInvalidArgument (malformed; the message names the
  // field), kUnimplemented (a valid component this build does not support yet).
  static Expected<Tokenizer> load(const std::string& path);
  // Same, from the text of tokenizer.json (and optionally tokenizer_config.json; "" for none).
  static Expected<Tokenizer> from_json_text(std::string_view tokenizer_json,
                                            std::string_view tokenizer_config_json = {});

  // Ids of `text`. Added/special tokens written in the text are matched (before the model).
  // add_special_tokens: add what the post-processor / tokenizer_config says (e.g. BOS).
  // Invalid UTF-8 in `text` is first replaced by U+FFFD (one per maximal invalid subsequence).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // Text of `ids`; invalid UTF-8 produced by the byte tokens becomes U+FFFD, as in tokenizers.
  // Ids that are out of range or unused are skipped.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Number of ids (max id + 1), added tokens included.
  int32_t vocab_size() const;
  // Id of a token as spelled in the vocab ("Ġhello") or of an added token ("<|im_end|>").
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  // Whether IncrementalDecoder's output joins to exactly decode() (apart from invalid byte-fallback
  // runs, see incremental_decoder.h). False only for decoder chains where a step sees several
  // tokens at once in a way one token at a time cannot reproduce, e.g. Replace after ByteFallback.
  bool stream_matches_decode() const;

 private:
  friend class IncrementalDecoder;
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

  // Appends the raw bytes of token `id` (nothing for unknown ids, or skipped special tokens; then
  // returns false). `first`: the id is the first decoded token (Metaspace drops its "▁").
  bool append_token_bytes(int32_t id, bool skip_special_tokens, bool first, std::string& out) const;
  const Decoder& decoder() const;

  std::shared_ptr<const Impl> impl_;
};

}  // namespace tidal
