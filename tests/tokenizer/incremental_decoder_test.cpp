#include "tidal/tokenizer/incremental_decoder.h"

#include <gtest/gtest.h>

#include <random>

#include "test_corpus.h"
#include "tidal/tokenizer/synthetic.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal {
namespace {

const Tokenizer& tokenizer() {
  static const Tokenizer kTok = std::move(Tokenizer::from_json_text(make_synthetic_tokenizer_json(2000))).value();
  return kTok;
}

// Feeds `ids` one by one; every piece must be valid UTF-8 and the pieces must join to decode().
void expect_streams_like_decode(const std::vector<int32_t>& ids, bool skip_special) {
  IncrementalDecoder decoder(tokenizer(), skip_special);
  std::string joined;
  for (int32_t id : ids) {
    const std::string piece = decoder.feed(id);
    ASSERT_TRUE(utf8::is_valid(piece));
    EXPECT_LE(decoder.n_pending(), 3u);
    joined += piece;
  }
  const std::string tail = decoder.finish();
  ASSERT_TRUE(utf8::is_valid(tail));
  joined += tail;
  EXPECT_EQ(joined, tokenizer().decode(ids, skip_special));
  EXPECT_EQ(decoder.n_pending(), 0u);
}

TEST(IncrementalDecoder, JoinsToFullDecodeOnCorpus) {
  for (const std::string& s : test::tokenizer_corpus()) {
    const auto ids = tokenizer().encode(s);
    expect_streams_like_decode(ids, false);
    expect_streams_like_decode(ids, true);
  }
}

TEST(IncrementalDecoder, HoldsBackAPartialCharacter) {
  // "中" is E4 B8 AD; with few merges its bytes are separate tokens.
  const auto ids = tokenizer().encode("\xe4\xb8\xad");
  ASSERT_GT(ids.size(), 1u);
  IncrementalDecoder decoder(tokenizer());
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += decoder.feed(ids[i]);
  EXPECT_EQ(out, "");
  EXPECT_GT(decoder.n_pending(), 0u);
  EXPECT_EQ(decoder.feed(ids.back()), "\xe4\xb8\xad");
}

TEST(IncrementalDecoder, RandomByteTokensNeverBreakUtf8) {
  // Ids 0..255 are the byte tokens: random sequences hit every invalid / truncated UTF-8 case.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<int32_t> ids(rng() % 12);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % 256);
    expect_streams_like_decode(ids, false);
  }
}

}  // namespace
}  // namespace tidal
