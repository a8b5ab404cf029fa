#include "tidal/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "test_corpus.h"
#include "tidal/tokenizer/synthetic.h"
#include "tidal/tokenizer/token_ids.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal {
namespace {

const Tokenizer& synthetic() {
  static const Tokenizer kTok = [] {
    auto t = Tokenizer::from_json_text(make_synthetic_tokenizer_json(8000),
                                       make_synthetic_tokenizer_config_json());
    EXPECT_TRUE(t) << t.status().to_string();
    return std::move(t).value();
  }();
  return kTok;
}

TEST(Tokenizer, RoundTripsTheCorpus) {
  for (const std::string& s : test::tokenizer_corpus()) {
    const auto ids = synthetic().encode(s);
    // NFC may change text with combining marks; everything else must round-trip byte-exactly.
    if (s.find("\xcc\x81") != std::string::npos || s.find("\xcc\x8a") != std::string::npos) continue;
    EXPECT_EQ(synthetic().decode(ids), s) << nlohmann::json(s).dump();
  }
}

TEST(Tokenizer, RoundTripsCategories) {
  for (const std::string s : {"plain ASCII text.", "\xc3\xa9\xe4\xb8\xad\xed\x95\x9c",
                              "\xf0\x9f\x98\x80\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9", "a    b\n\n\n\tc  ",
                              "0123456789 98765", "<|im_start|>x<|im_end|>"}) {
    EXPECT_EQ(synthetic().decode(synthetic().encode(s)), s);
  }
}

TEST(Tokenizer, EmptyTextHasNoIds) {
  EXPECT_TRUE(synthetic().encode("").empty());
  EXPECT_EQ(synthetic().decode(std::vector<int32_t>{}), "");
}

TEST(Tokenizer, MatchesSpecialTokensInText) {
  const int32_t start = *synthetic().token_to_id("<|im_start|>");
  const int32_t end = *synthetic().token_to_id("<|im_end|>");
  const auto ids = synthetic().encode("<|im_start|>user<|im_end|>");
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), start);
  EXPECT_EQ(ids.back(), end);
  EXPECT_EQ(synthetic().decode(ids, /*skip_special_tokens=*/true), "user");
}

TEST(Tokenizer, DigitsAreSplitOneByOne) {
  // Qwen2's pattern isolates each \p{N}.
  EXPECT_EQ(synthetic().encode("12345").size(), 5u);
}

TEST(Tokenizer, InvalidUtf8InputBecomesReplacementCharacter) {
  const auto ids = synthetic().encode("a\xffz");
  EXPECT_EQ(synthetic().decode(ids), std::string("a").append(utf8::kReplacement).append("z"));
}

TEST(Tokenizer, OutOfRangeIdsAreSkippedInDecode) {
  const std::vector<int32_t> ids = {-1, 1 << 30, *synthetic().token_to_id("a")};
  EXPECT_EQ(synthetic().decode(ids), "a");
}

TEST(Tokenizer, AddBosTokenFromConfig) {
  auto config = nlohmann::json::parse(make_synthetic_tokenizer_config_json());
  config["bos_token"] = "<|endoftext|>";
  config["add_bos_token"] = true;
  auto tok = Tokenizer::from_json_text(make_synthetic_tokenizer_json(1000), config.dump());
  ASSERT_TRUE(tok) << tok.status().to_string();
  EXPECT_EQ(tok->bos_id(), 997);
  EXPECT_EQ(tok->encode("hi").front(), 997);
  EXPECT_NE(tok->encode("hi", /*add_special_tokens=*/false).front(), 997);
}

TEST(Tokenizer, LoadsAFolderOrAFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("tidal_tok_load_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << make_synthetic_tokenizer_json(500);
  std::ofstream(dir / "tokenizer_config.json") << make_synthetic_tokenizer_config_json();
  for (const auto& path : {dir, dir / "tokenizer.json"}) {
    auto tok = Tokenizer::load(path.string());
    ASSERT_TRUE(tok) << tok.status().to_string();
    EXPECT_EQ(tok->vocab_size(), 500);
    EXPECT_EQ(tok->eos_id(), 499);
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(Tokenizer::load(dir.string()).status().code(), StatusCode::kNotFound);
}

// Tables are indexed by token id, so an id far above any real vocabulary (the fuzzer found
// 16,666,666, which needed gigabytes) is refused by name instead of allocated.
TEST(Tokenizer, TokenIdsAboveTheLimitAreRefused) {
  const auto j = nlohmann::json::parse(make_synthetic_tokenizer_json(300));
  auto broken = j;
  broken["model"]["vocab"]["zz-huge"] = kMaxTokenId + 1;
  auto tok = Tokenizer::from_json_text(broken.dump());
  ASSERT_FALSE(tok);
  EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(tok.status().message().find("model.vocab[\"zz-huge\"]: id 2097152 is above"), std::string::npos)
      << tok.status().message();

  broken = j;
  broken["added_tokens"][0]["id"] = int64_t{1} << 40;
  tok = Tokenizer::from_json_text(broken.dump());
  ASSERT_FALSE(tok);
  EXPECT_NE(tok.status().message().find("added_tokens[0].id: 1099511627776 is above"), std::string::npos)
      << tok.status().message();

  // The largest allowed id still loads, and the table grows to hold it.
  auto edge = j;
  edge["added_tokens"][0]["id"] = kMaxTokenId;
  tok = Tokenizer::from_json_text(edge.dump());
  ASSERT_TRUE(tok) << tok.status().to_string();
  EXPECT_EQ(tok->token_to_id(edge["added_tokens"][0]["content"].get<std::string>()).value_or(-1), kMaxTokenId);
}

TEST(Tokenizer, MalformedJsonNamesTheField) {
  EXPECT_EQ(Tokenizer::from_json_text("{not json").status().code(), StatusCode::kInvalidArgument);

  auto j = nlohmann::json::parse(make_synthetic_tokenizer_json(300));
  auto broken = j;
  broken["model"].erase("vocab");
  auto tok = Tokenizer::from_json_text(broken.dump());
  ASSERT_FALSE(tok);
  EXPECT_NE(tok.status().message().find("model.vocab"), std::string::npos) << tok.status().message();

  broken = j;
  broken["model"]["merges"][0] = {"no-such-token", "x"};
  tok = Tokenizer::from_json_text(broken.dump());
  ASSERT_FALSE(tok);
  EXPECT_NE(tok.status().message().find("model.merges[0]"), std::string::npos) << tok.status().message();

  broken = j;
  broken["added_tokens"][0]["id"] = "seven";
  tok = Tokenizer::from_json_text(broken.dump());
  ASSERT_FALSE(tok);
  EXPECT_NE(tok.status().message().find("added_tokens[0].id"), std::string::npos) << tok.status().message();

  broken = j;
  broken["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  tok = Tokenizer::from_json_text(broken.dump());
  ASSERT_FALSE(tok);
  EXPECT_NE(tok.status().message().find("pre_tokenizer.pretokenizers[0].pattern"), std::string::npos)
      << tok.status().message();

  broken = j;
  broken["normalizer"] = {{"type", "BertNormalizer"}};
  EXPECT_EQ(Tokenizer::from_json_text(broken.dump()).status().code(), StatusCode::kUnimplemented);

  broken = j;
  broken["model"]["vocab"] = 3;
  EXPECT_EQ(Tokenizer::from_json_text(broken.dump()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tidal
