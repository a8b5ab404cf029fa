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

// A small SentencePiece-style vocabulary (byte fallback) with the decoder chain `decoder`.
Tokenizer spm_tokenizer(const std::string& decoder) {
  const std::string json = R"({"model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
    "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "\u2581a": 3, "<0x20>": 4, "<0x61>": 5, "b": 6,
              "<0xE4>": 7, "<0xB8>": 8, "<0xAD>": 9, "\u2581\u2581": 10},
    "merges": ["\u2581 a", "\u2581 \u2581"]}, "decoder": )" + decoder + "}";
  auto tok = Tokenizer::from_json_text(json);
  EXPECT_TRUE(tok.has_value()) << tok.status().message();
  return std::move(tok).value();
}

std::string stream(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  IncrementalDecoder decoder(tok);
  std::string joined;
  for (int32_t id : ids) joined += decoder.feed(id);
  return joined + decoder.finish();
}

// Strip's counts must be non-negative integers that fit: a huge number (JSON gives it as a
// float; converting it to size_t was undefined behaviour, found by fuzz_tokenizer), a negative one
// or a string is one clear error naming the field.
TEST(IncrementalDecoder, StripCountsOutOfRangeAreRefused) {
  for (const std::string stop : {"2222222222222222222222222222222222220", "-1", "2.5", "\"3\"", "4294967296"}) {
    const std::string json = R"({"model": {"type": "BPE", "unk_token": "<unk>", "vocab": {"<unk>": 0, "a": 1},
      "merges": []}, "decoder": {"type": "Strip", "content": " ", "start": 1, "stop": )" + stop + "}}";
    auto tok = Tokenizer::from_json_text(json);
    ASSERT_FALSE(tok.has_value()) << stop;
    EXPECT_NE(tok.status().message().find("stop"), std::string::npos) << tok.status().message();
  }
}

// Every Strip placement the stream supports: leading and trailing characters of the whole text
// (after Fuse; trailing ones are held back until text follows them), and per token (before Fuse).
TEST(IncrementalDecoder, StripChainsJoinToFullDecode) {
  const std::string replace = R"({"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "})";
  const std::string chains[] = {
      "[" + replace + R"(, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}])",
      "[" + replace + R"(, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 2}])",
      "[" + replace + R"(, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 0, "stop": 5}])",
      "[" + replace + R"(, {"type": "Strip", "content": " ", "start": 1, "stop": 1}, {"type": "ByteFallback"}, {"type": "Fuse"}])",
      "[" + replace + R"(, {"type": "Strip", "content": "a", "start": 2, "stop": 1}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 1}])",
  };
  std::mt19937 rng(11);
  for (const std::string& chain : chains) {
    const Tokenizer tok = spm_tokenizer(R"({"type": "Sequence", "decoders": )" + chain + "}");
    ASSERT_TRUE(tok.stream_matches_decode()) << chain;
    int compared = 0;
    for (int trial = 0; trial < 3000; ++trial) {
      std::vector<int32_t> ids(rng() % 9);
      for (auto& id : ids) id = static_cast<int32_t>(rng() % 11);
      const std::string full = tok.decode(ids);
      if (full.find("\xef\xbf\xbd") != std::string::npos) continue;  // see incremental_decoder.h
      ASSERT_EQ(stream(tok, ids), full) << chain << "\ntrial " << trial;
      ++compared;
    }
    EXPECT_GT(compared, 1000) << chain;
  }
}

TEST(IncrementalDecoder, TrailingStripHoldsSpacesBackUntilTextFollows) {
  const Tokenizer tok = spm_tokenizer(
      R"({"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
          {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 0, "stop": 1}]})");
  IncrementalDecoder decoder(tok);
  EXPECT_EQ(decoder.feed(2), "a");
  EXPECT_EQ(decoder.feed(10), "");     // "  " might end the text
  EXPECT_EQ(decoder.feed(3), "   a");  // it did not
  EXPECT_EQ(decoder.feed(1), "");
  EXPECT_EQ(decoder.finish(), "");     // the text ends with one space: Strip drops it
  EXPECT_EQ(tok.decode(std::vector<int32_t>{2, 10, 3, 1}), "a   a");
}

// Steps that see several tokens at once cannot be streamed exactly; the tokenizer says so.
TEST(IncrementalDecoder, ReportsChainsItCannotStreamExactly) {
  const std::string replace = R"({"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "})";
  EXPECT_TRUE(spm_tokenizer(R"({"type": "Metaspace"})").stream_matches_decode());
  EXPECT_FALSE(spm_tokenizer(R"({"type": "Sequence", "decoders": [{"type": "ByteFallback"}, )" + replace + "]}")
                   .stream_matches_decode());
  EXPECT_FALSE(spm_tokenizer(R"({"type": "Sequence", "decoders": [{"type": "Fuse"}, )" + replace + "]}")
                   .stream_matches_decode());
  EXPECT_FALSE(spm_tokenizer(R"({"type": "Sequence", "decoders": [{"type": "ByteFallback"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})").stream_matches_decode());
  EXPECT_TRUE(tokenizer().stream_matches_decode());  // byte-level
}

}  // namespace
}  // namespace tidal
