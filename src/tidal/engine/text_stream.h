// TextStream: one sequence's output text, built token by token, with stop strings.
//
// push(id) detokenizes incrementally (never a broken UTF-8 sequence) and searches for stop
// strings across token boundaries. delta() returns the text that is safe to show: it holds back
// any tail that could still become a stop string. When a stop string is found the text ends
// just before it (the stop string is not part of the output).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tidal/tokenizer/incremental_decoder.h"
#include "tidal/tokenizer/tokenizer.h"

namespace tidal {

class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stop);

  // Appends a token; returns true when a stop string completed (the stream is then finished).
  bool push(int32_t id);
  // Flushes held-back bytes (call once when the sequence ends for another reason).
  void finish();
  // Text not yet returned by delta() that can no longer change.
  std::string delta();
  const std::string& text() const { return text_; }

 private:
  size_t hold_back() const;  // bytes at the end of text_ that may begin a stop string

  IncrementalDecoder decoder_;
  std::vector<std::string> stop_;
  size_t max_stop_ = 0;
  std::string text_;
  size_t sent_ = 0;
  bool finished_ = false;
};

}  // namespace tidal
