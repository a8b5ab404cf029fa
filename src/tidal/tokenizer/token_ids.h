// Token id lists as text: what `tidal tokenize` prints (ids separated by spaces) and what tools
// that score a fixed token stream read back (e.g. bench_quant_accuracy --token-ids, which scores
// exactly the ids llama.cpp's llama-perplexity evaluated).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tidal/core/status.h"

namespace tidal {

// The largest token id a tokenizer may define. Tables are indexed by id, so an id of 2^31 would
// ask for tens of gigabytes; the largest real vocabularies are ~260K, this leaves 8x room.
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 21) - 1;

// Parses decimal token ids separated by whitespace and/or commas ("1 2 3", "1,2,3", one per
// line...). Every id must be a non-negative 32-bit integer and, when vocab_size > 0, below it.
// An empty list is an error. Errors name the offending item and its index.
Expected<std::vector<int32_t>> parse_token_ids(std::string_view text, int64_t vocab_size = 0);

// Reads and parses a file in the format above; errors name the file.
Expected<std::vector<int32_t>> read_token_ids(const std::string& path, int64_t vocab_size = 0);

}  // namespace tidal
