#include "tidal/tokenizer/incremental_decoder.h"

#include "tidal/tokenizer/decoder.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal {

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {
  n_lead_ = tokenizer.decoder().text_strip().start;
}

std::string IncrementalDecoder::feed(int32_t id) {
  if (tokenizer_->append_token_bytes(id, skip_special_tokens_, n_tokens_ == 0, pending_)) ++n_tokens_;
  std::string text;
  const size_t consumed = utf8::append_lossy(pending_, text, /*hold_incomplete=*/true);
  pending_.erase(0, consumed);
  const Decoder::TextStrip& strip = tokenizer_->decoder().text_strip();
  if (strip.content.empty() || text.empty()) return text;
  const std::string& c = strip.content;
  // Strip removes up to `start` leading content characters of the whole text...
  size_t b = 0;
  while (n_lead_ > 0 && text.compare(b, c.size(), c) == 0) { b += c.size(); --n_lead_; }
  if (b < text.size()) n_lead_ = 0;  // the text has begun: no more leading characters
  text.erase(0, b);
  if (strip.stop == 0 || text.empty()) return text;
  // ...and up to `stop` trailing ones: hold back the trailing run until more text follows it.
  size_t e = text.size(), n = 0;
  while (e >= c.size() && text.compare(e - c.size(), c.size(), c) == 0) { e -= c.size(); ++n; }
  if (e == 0) {  // all content characters: they may still be the end of the text
    held_ += text;
    n_held_ += n;
    return {};
  }
  std::string out = std::move(held_) + text.substr(0, e);
  held_ = text.substr(e);
  n_held_ = n;
  return out;
}

std::string IncrementalDecoder::finish() {
  std::string text;
  utf8::append_lossy(pending_, text);
  pending_.clear();
  const Decoder::TextStrip& strip = tokenizer_->decoder().text_strip();
  if (text.empty()) {  // the held characters end the text: Strip drops `stop` of them
    const size_t drop = std::min(n_held_, strip.stop);
    held_.resize(held_.size() - drop * strip.content.size());
  }
  text = std::move(held_) + text;
  held_.clear();
  n_held_ = 0;
  n_tokens_ = 0;
  n_lead_ = strip.start;
  return text;
}

}  // namespace tidal
