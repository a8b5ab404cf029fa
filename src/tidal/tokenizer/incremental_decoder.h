// IncrementalDecoder: streaming detokenization. Feed ids one at a time; each call returns the text
// that became complete. Output never ends inside a UTF-8 sequence: bytes of an incomplete code
// point are held back until a later id completes them (or proves them invalid, then U+FFFD).
// Contract: concat(feed(id_1), ..., feed(id_n), finish()) == tokenizer.decode({id_1..id_n}), except
// for SentencePiece-style byte-fallback runs that are invalid UTF-8: a full decode writes one U+FFFD
// per byte, the stream one per maximal invalid subsequence; and decoder chains that
// Tokenizer::stream_matches_decode() reports as not streamable exactly. A Strip that removes
// trailing characters of the text makes the stream hold those characters back until a later id
// shows they are not at the end (finish() drops them).
// Not thread-safe (one per stream); the Tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>

#include "tidal/tokenizer/tokenizer.h"

namespace tidal {

class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  // Text completed by `id` (often empty for a partial multi-byte character).
  std::string feed(int32_t id);
  // Flushes the held-back bytes (as U+FFFD, like a full decode would) and resets the stream.
  std::string finish();
  // Bytes held back, at most 3.
  size_t n_pending() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
  size_t n_tokens_ = 0;   // tokens decoded so far (the first is special for Metaspace)
  size_t n_lead_ = 0;     // leading Strip characters still to remove from the text
  std::string held_;      // trailing Strip characters held back (a Strip with stop > 0)
  size_t n_held_ = 0;     // characters in held_
};

}  // namespace tidal
