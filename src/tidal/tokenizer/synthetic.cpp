#include "tidal/tokenizer/synthetic.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/tokenizer/byte_level.h"

namespace tidal {
namespace {

constexpr const char* kSpecialTokens[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Training text for the first merges: common English, so that typical prompts compress somewhat.
constexpr const char* kTrainingText =
    "the quick brown fox jumps over the lazy dog and the cat sat on the mat while the rain "
    "fell in the street there is a time for everything and a season for every activity under "
    "the heavens this is the house that jack built and these are the people who live in it "
    "we hold these truths to be self evident that all men are created equal that they are "
    "endowed with certain rights that among these are life liberty and the pursuit of happiness "
    "in the beginning was the word and the word was with the model the model reads the input "
    "and writes the output one token at a time the tokens are the pieces of the text that the "
    "model understands when it is trained on the data it learns which tokens follow which other "
    "tokens and how often they appear together in sentences paragraphs and documents of every "
    "kind there are many ways to say the same thing and many things that cannot be said at all "
    "she said that he would come back tomorrow morning but nobody believed her because he had "
    "never come back before it was the best of times it was the worst of times it was the age "
    "of wisdom it was the age of foolishness it was the epoch of belief it was the epoch of "
    "incredulity it was the season of light it was the season of darkness";

// Letters in English frequency order, for the fill merges.
constexpr const char* kFillLetters = "etaoinshrdlcumwfgypbvkjxqz";

std::string quote(const std::string& s) { return nlohmann::json(s).dump(); }

struct Vocab {
  std::vector<std::string> tokens;  // byte-level spelling, by id
  std::unordered_set<std::string> known;
  std::vector<std::pair<int32_t, int32_t>> merges;

  bool add_merge(int32_t a, int32_t b) {
    std::string s = tokens[static_cast<size_t>(a)] + tokens[static_cast<size_t>(b)];
    if (!known.insert(s).second) return false;
    tokens.push_back(std::move(s));
    merges.emplace_back(a, b);
    return true;
  }
};

// Byte-level BPE training on kTrainingText (words carry their leading space, as GPT-2 splits).
void train(Vocab& v, const std::vector<int32_t>& byte_id, size_t n_merges) {
  std::map<std::string, int> word_counts;
  std::string text = kTrainingText;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start + 1);
    if (end == std::string::npos) end = text.size();
    word_counts[text.substr(start, end - start)]++;
    start = end;
  }
  std::vector<std::pair<std::vector<int32_t>, int>> words;
  for (const auto& [w, count] : word_counts) {
    std::vector<int32_t> ids;
    for (unsigned char c : w) ids.push_back(byte_id[c]);
    words.emplace_back(std::move(ids), count);
  }
  std::set<std::pair<int32_t, int32_t>> banned;  // pairs whose text already is a token
  while (v.merges.size() < n_merges) {
    std::map<std::pair<int32_t, int32_t>, int> pair_counts;
    for (const auto& [ids, count] : words) {
      for (size_t i = 0; i + 1 < ids.size(); ++i) pair_counts[{ids[i], ids[i + 1]}] += count;
    }
    std::pair<int32_t, int32_t> best{-1, -1};
    int best_count = 1;
    for (const auto& [pair, count] : pair_counts) {  // ties: smallest pair, as map order is stable
      if (count > best_count && !banned.count(pair)) { best = pair; best_count = count; }
    }
    if (best.first < 0) break;
    if (!v.add_merge(best.first, best.second)) { banned.insert(best); continue; }
    const auto new_id = static_cast<int32_t>(v.tokens.size() - 1);
    for (auto& [ids, count] : words) {
      std::vector<int32_t> merged;
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i + 1 < ids.size() && ids[i] == best.first && ids[i + 1] == best.second) {
          merged.push_back(new_id);
          ++i;
        } else {
          merged.push_back(ids[i]);
        }
      }
      ids.swap(merged);
    }
  }
}

// True for tokens spelled only with a-z, optionally after one leading space (Ġ).
bool is_letter_word(const std::string& token) {
  std::string_view s = token;
  if (s.rfind("\xC4\xA0", 0) == 0) s.remove_prefix(2);  // "Ġ"
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

}  // namespace

std::string make_synthetic_tokenizer_json(int32_t vocab_size) {
  vocab_size = std::max(vocab_size, kMinSyntheticVocabSize);
  const size_t n_merges = static_cast<size_t>(vocab_size - kMinSyntheticVocabSize);

  Vocab v;
  std::vector<int32_t> byte_id(256);
  // GPT-2 order: the printable bytes first, then the others (as in GPT-2 / Qwen2 vocabularies).
  std::vector<int> order;
  for (int b = 0; b < 256; ++b) {
    if (byte_level::byte_to_code_point(static_cast<uint8_t>(b)) == static_cast<uint32_t>(b)) order.push_back(b);
  }
  for (int b = 0; b < 256; ++b) {
    if (byte_level::byte_to_code_point(static_cast<uint8_t>(b)) != static_cast<uint32_t>(b)) order.push_back(b);
  }
  for (int b : order) {
    byte_id[static_cast<size_t>(b)] = static_cast<int32_t>(v.tokens.size());
    v.tokens.push_back(byte_level::encode(std::string(1, static_cast<char>(b))));
    v.known.insert(v.tokens.back());
  }

  train(v, byte_id, n_merges);
  // Fill: extend letter-only tokens by one letter, oldest tokens first, until the quota is met.
  for (size_t left = 0; v.merges.size() < n_merges; ++left) {
    if (!is_letter_word(v.tokens[left])) continue;
    for (const char* c = kFillLetters; *c != '\0' && v.merges.size() < n_merges; ++c) {
      v.add_merge(static_cast<int32_t>(left), byte_id[static_cast<unsigned char>(*c)]);
    }
  }

  std::string out;
  out.reserve(v.tokens.size() * 40);
  out += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": [";
  for (size_t i = 0; i < 3; ++i) {
    out += i == 0 ? "\n" : ",\n";
    out += "    {\"id\": " + std::to_string(v.tokens.size() + i) + ", \"content\": " +
           quote(kSpecialTokens[i]) +
           ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
           "\"special\": true}";
  }
  out += "\n  ],\n";
  out += "  \"normalizer\": {\"type\": \"NFC\"},\n";
  out += "  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
         "\"pattern\": {\"Regex\": " + quote(kQwen2Pattern) +
         "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
         "\"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}]},\n";
  out += "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
         "\"trim_offsets\": false, \"use_regex\": false},\n";
  out += "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
         "\"trim_offsets\": false, \"use_regex\": false},\n";
  out += "  \"model\": {\n    \"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
         "\"continuing_subword_prefix\": \"\", \"end_of_word_suffix\": \"\", \"fuse_unk\": false, "
         "\"byte_fallback\": false, \"ignore_merges\": false,\n    \"vocab\": {";
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    out += id == 0 ? "\n      " : ",\n      ";
    out += quote(v.tokens[id]) + ": " + std::to_string(id);
  }
  out += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < v.merges.size(); ++i) {
    out += i == 0 ? "\n      [" : ",\n      [";
    out += quote(v.tokens[static_cast<size_t>(v.merges[i].first)]) + ", " +
           quote(v.tokens[static_cast<size_t>(v.merges[i].second)]) + "]";
  }
  out += "\n    ]\n  }\n}\n";
  return out;
}

std::string make_synthetic_tokenizer_config_json() {
  nlohmann::ordered_json config;
  config["add_bos_token"] = false;
  config["add_prefix_space"] = false;
  config["bos_token"] = nullptr;
  config["eos_token"] = "<|im_end|>";
  config["pad_token"] = "<|endoftext|>";
  config["unk_token"] = nullptr;
  config["clean_up_tokenization_spaces"] = false;
  config["errors"] = "replace";
  config["model_max_length"] = 32768;
  config["split_special_tokens"] = false;
  config["tokenizer_class"] = "Qwen2Tokenizer";
  config["chat_template"] =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
      "{{ '<|im_start|>assistant\\n' }}{% endif %}";
  return config.dump(2) + "\n";
}

}  // namespace tidal
