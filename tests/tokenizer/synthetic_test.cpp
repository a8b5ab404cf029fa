#include "tidal/tokenizer/synthetic.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tidal/tokenizer/tokenizer.h"

namespace tidal {
namespace {

TEST(SyntheticTokenizer, HasExactlyVocabSizeIds) {
  for (int32_t vocab_size : {259, 260, 300, 1000, 32000, 152000}) {
    SCOPED_TRACE(vocab_size);
    const std::string text = make_synthetic_tokenizer_json(vocab_size);
    auto tok = Tokenizer::from_json_text(text, make_synthetic_tokenizer_config_json());
    ASSERT_TRUE(tok) << tok.status().to_string();
    EXPECT_EQ(tok->vocab_size(), vocab_size);
    const auto j = nlohmann::json::parse(text);
    EXPECT_EQ(j["model"]["vocab"].size() + j["added_tokens"].size(), static_cast<size_t>(vocab_size));
    EXPECT_EQ(j["model"]["merges"].size(), static_cast<size_t>(vocab_size - 259));
    EXPECT_EQ(tok->token_to_id("<|endoftext|>"), vocab_size - 3);
    EXPECT_EQ(tok->token_to_id("<|im_start|>"), vocab_size - 2);
    EXPECT_EQ(tok->token_to_id("<|im_end|>"), vocab_size - 1);
    EXPECT_EQ(tok->eos_id(), vocab_size - 1);
    EXPECT_EQ(tok->bos_id(), std::nullopt);
  }
}

TEST(SyntheticTokenizer, IsDeterministic) {
  EXPECT_EQ(make_synthetic_tokenizer_json(5000), make_synthetic_tokenizer_json(5000));
}

TEST(SyntheticTokenizer, MergesCompressEnglish) {
  auto tok = Tokenizer::from_json_text(make_synthetic_tokenizer_json(4000));
  ASSERT_TRUE(tok) << tok.status().to_string();
  const std::string text = "the model reads the input and writes the output";
  EXPECT_LT(tok->encode(text).size(), text.size() / 2);
}

TEST(SyntheticTokenizer, ConfigNamesTheSpecialTokens) {
  const auto config = nlohmann::json::parse(make_synthetic_tokenizer_config_json());
  EXPECT_EQ(config["eos_token"], "<|im_end|>");
  EXPECT_TRUE(config["bos_token"].is_null());
  EXPECT_EQ(config["add_bos_token"], false);
  EXPECT_NE(config["chat_template"].get<std::string>().find("<|im_start|>"), std::string::npos);
}

}  // namespace
}  // namespace tidal
