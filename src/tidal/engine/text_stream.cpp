#include "tidal/engine/text_stream.h"

#include <algorithm>

namespace tidal {

TextStream::TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop)
    : decoder_(tokenizer, /*skip_special_tokens=*/true), stop_(std::move(stop)) {
  for (const auto& s : stop_) max_stop_ = std::max(max_stop_, s.size());
}

bool TextStream::push(int32_t id) {
  if (finished_) return true;
  const size_t before = text_.size();
  text_ += decoder_.feed(id);
  if (stop_.empty() || text_.size() == before) return false;
  // A stop string that ends inside the new text starts at most max_stop_ - 1 bytes earlier.
  const size_t from = before >= max_stop_ ? before - max_stop_ + 1 : 0;
  size_t cut = std::string::npos;
  for (const auto& s : stop_) {
    const size_t at = text_.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut == std::string::npos) return false;
  text_.resize(std::max(cut, sent_));
  finished_ = true;
  return true;
}

void TextStream::finish() {
  if (finished_) return;
  text_ += decoder_.finish();
  finished_ = true;
}

size_t TextStream::hold_back() const {
  if (finished_) return 0;
  size_t hold = 0;
  for (const auto& s : stop_) {
    // Longest proper prefix of s that is a suffix of text_.
    for (size_t n = std::min(s.size() - 1, text_.size()); n > hold; --n) {
      if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

std::string TextStream::delta() {
  const size_t end = text_.size() - hold_back();
  if (end <= sent_) return {};
  std::string d = text_.substr(sent_, end - sent_);
  sent_ = end;
  return d;
}

}  // namespace tidal
