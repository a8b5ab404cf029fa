#include "tidal/model/config.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tidal {
namespace {

const char* kQwen3 = R"({"architectures":["Qwen3ForCausalLM"],"vocab_size":1000,"hidden_size":256,
  "intermediate_size":512,"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":2,
  "head_dim":128,"rms_norm_eps":1e-6,"rope_theta":1000000,"tie_word_embeddings":true,"eos_token_id":[5,7]})";

TEST(ConfigTest, ParsesQwen3) {
  auto c = ModelConfig::parse(kQwen3, "config.json");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->head_dim, 128);  // explicit, not hidden / heads
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{5, 7}));
}

TEST(ConfigTest, ErrorsNameTheField) {
  std::string no_hidden = R"({"architectures":["LlamaForCausalLM"],"vocab_size":10,"intermediate_size":4,
    "num_hidden_layers":1,"num_attention_heads":2})";
  auto c = ModelConfig::parse(no_hidden, "m/config.json");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.status().message(), "m/config.json: missing field 'hidden_size'");

  auto u = ModelConfig::parse(R"({"architectures":["MambaForCausalLM"]})", "config.json");
  ASSERT_FALSE(u);
  EXPECT_EQ(u.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(u.status().message().find("unsupported architecture 'MambaForCausalLM'"), std::string::npos);

  auto g = ModelConfig::parse(R"({"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":12,
    "intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":6,"num_key_value_heads":4})", "config.json");
  ASSERT_FALSE(g);
  EXPECT_NE(g.status().message().find("not a multiple of num_key_value_heads"), std::string::npos);

  EXPECT_FALSE(ModelConfig::parse("{not json", "config.json"));
}

TEST(ConfigTest, Llama3RopeScaling) {
  auto c = ModelConfig::parse(R"({"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":1024,
    "intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":8,"rope_theta":500000,
    "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
    "original_max_position_embeddings":8192}})", "config.json");
  ASSERT_TRUE(c) << c.status().to_string();
  auto inv = c->rope_inv_freq();
  ASSERT_EQ(inv.size(), 64u);
  const double pi = 3.14159265358979323846;
  for (size_t i = 0; i < inv.size(); ++i) {
    const double f = 1.0 / std::pow(500000.0, 2.0 * double(i) / 128.0);
    const double wavelen = 2 * pi / f;
    if (wavelen < 8192.0 / 4.0) {
      EXPECT_FLOAT_EQ(inv[i], float(f));  // high frequency: kept
    } else if (wavelen > 8192.0) {
      EXPECT_FLOAT_EQ(inv[i], float(f / 8.0));  // low frequency: scaled
    }
  }
  auto bad = ModelConfig::parse(R"({"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":16,
    "intermediate_size":4,"num_hidden_layers":1,"num_attention_heads":2,"rope_scaling":{"type":"yarn","factor":2}})",
                                "config.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("rope_scaling type 'yarn' is not supported"), std::string::npos);
}

}  // namespace
}  // namespace tidal
