// A synthetic, deterministic byte-level BPE tokenizer for random-weight test models
// (`tidal model init`). Same shape as Qwen2's: NFC normalizer, the Qwen2 Split regex + ByteLevel
// pre-tokenizer, ByteLevel decoder, and three special tokens at the end.
#pragma once

#include <cstdint>
#include <string>

namespace tidal {

// 256 byte tokens + 3 special tokens: the smallest vocabulary (no merges).
inline constexpr int32_t kMinSyntheticVocabSize = 259;

// Text of a valid Hugging Face tokenizer.json with exactly `vocab_size` ids: ids [0, 256) are the
// byte tokens (GPT-2 order), then one token per merge (frequent pairs of a built-in English text
// first, then letter extensions of letter-only tokens), then <|endoftext|>, <|im_start|>,
// <|im_end|> as the last three ids. Deterministic. Precondition: vocab_size >= 259 (smaller values
// are raised to 259).
std::string make_synthetic_tokenizer_json(int32_t vocab_size);

// Text of a matching tokenizer_config.json: eos_token <|im_end|>, pad <|endoftext|>, no BOS, and a
// plain ChatML chat_template.
std::string make_synthetic_tokenizer_config_json();

}  // namespace tidal
