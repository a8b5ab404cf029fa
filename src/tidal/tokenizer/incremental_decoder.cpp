#include "tidal/tokenizer/incremental_decoder.h"

#include "tidal/tokenizer/utf8.h"

namespace tidal {

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {
  n_strip_ = tokenizer.stream_strip_start(&strip_content_);
}

std::string IncrementalDecoder::feed(int32_t id) {
  if (tokenizer_->append_token_bytes(id, skip_special_tokens_, n_tokens_ == 0, pending_)) ++n_tokens_;
  std::string text;
  const size_t consumed = utf8::append_lossy(pending_, text, /*hold_incomplete=*/true);
  pending_.erase(0, consumed);
  // The decoder's Strip removes up to n leading `content` characters of the whole text.
  while (n_strip_ > 0 && !text.empty()) {
    if (text.compare(0, strip_content_.size(), strip_content_) != 0) { n_strip_ = 0; break; }
    text.erase(0, strip_content_.size());
    --n_strip_;
  }
  return text;
}

std::string IncrementalDecoder::finish() {
  std::string text;
  utf8::append_lossy(pending_, text);
  pending_.clear();
  n_tokens_ = 0;
  n_strip_ = tokenizer_->stream_strip_start(&strip_content_);
  return text;
}

}  // namespace tidal
