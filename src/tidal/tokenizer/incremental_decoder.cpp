#include "tidal/tokenizer/incremental_decoder.h"

#include "tidal/tokenizer/utf8.h"

namespace tidal {

std::string IncrementalDecoder::feed(int32_t id) {
  tokenizer_->append_token_bytes(id, skip_special_tokens_, pending_);
  std::string text;
  const size_t consumed = utf8::append_lossy(pending_, text, /*hold_incomplete=*/true);
  pending_.erase(0, consumed);
  return text;
}

std::string IncrementalDecoder::finish() {
  std::string text;
  utf8::append_lossy(pending_, text);
  pending_.clear();
  return text;
}

}  // namespace tidal
