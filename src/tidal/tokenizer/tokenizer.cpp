#include "tidal/tokenizer/tokenizer.h"

#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tidal/tokenizer/added_vocabulary.h"
#include "tidal/tokenizer/bpe_model.h"
#include "tidal/tokenizer/byte_level.h"
#include "tidal/tokenizer/decoder.h"
#include "tidal/tokenizer/normalizer.h"
#include "tidal/tokenizer/pre_tokenizer.h"
#include "tidal/tokenizer/utf8.h"

namespace tidal {

struct Tokenizer::Impl {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  Decoder decoder;
  AddedVocabulary added;
  bool has_normalized_added = false;   // some added token is matched after normalization
  std::vector<std::string> id_bytes;   // raw bytes each id decodes to (streaming, byte-level)
  std::vector<std::string> id_tokens;  // token spelling of each id (chain decoders)
  std::vector<uint8_t> is_special;     // 1 for special added tokens
  StringIdMap token_to_id;
  std::vector<int32_t> prefix_ids;     // added by encode(add_special_tokens = true)
  std::vector<int32_t> suffix_ids;
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;

  // Builds the tables from parsed tokenizer.json and tokenizer_config.json (null when absent).
  static auto create(const nlohmann::json& j, const nlohmann::json& config)
      -> Expected<std::shared_ptr<Impl>>;
  void encode_model(std::string_view text, bool at_start, std::vector<int32_t>& ids) const;
};

namespace {

using nlohmann::json;

Expected<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return io_error(path.string() + ": read failed");
  return ss.str();
}

Expected<json> parse_json(std::string_view text, const std::string& what) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return invalid_argument(what + ": not valid JSON: " + e.what());
  }
}

// Collects the ids a post-processor adds around a single sequence.
Status add_post_processor(const json& j, const std::string& field, std::vector<int32_t>& prefix,
                          std::vector<int32_t>& suffix) {
  if (j.is_null()) return Status::ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument(field + ": expected an object with a string \"type\"");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "ByteLevel") return Status::ok();  // offsets only; ids unchanged
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return invalid_argument(field + ".processors: expected an array");
    }
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      TIDAL_RETURN_IF_ERROR(add_post_processor(j["processors"][i],
                                               field + ".processors[" + std::to_string(i) + "]",
                                               prefix, suffix));
    }
    return Status::ok();
  }
  if (type != "TemplateProcessing") {
    return unimplemented(field + ".type: post-processor \"" + type + "\" is not supported yet");
  }
  if (!j.contains("single") || !j["single"].is_array()) {
    return invalid_argument(field + ".single: expected an array");
  }
  const json& special = j.contains("special_tokens") ? j["special_tokens"] : json::object();
  bool seen_sequence = false;
  for (const json& piece : j["single"]) {
    if (piece.contains("Sequence")) { seen_sequence = true; continue; }
    if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id")) {
      return invalid_argument(field + ".single: expected SpecialToken or Sequence entries");
    }
    const std::string name = piece["SpecialToken"]["id"].get<std::string>();
    if (!special.contains(name) || !special[name].contains("ids") || !special[name]["ids"].is_array()) {
      return invalid_argument(field + ".special_tokens: \"" + name + "\" is missing or has no ids");
    }
    for (const json& id : special[name]["ids"]) {
      (seen_sequence ? suffix : prefix).push_back(id.get<int32_t>());
    }
  }
  return Status::ok();
}

// tokenizer_config.json writes a token as "text", {"content": "text", ...} or null.
std::optional<std::string> config_token(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

void Tokenizer::Impl::encode_model(std::string_view text, bool at_start, std::vector<int32_t>& ids) const {
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;
  pre_tokenizer.split(text, pieces, storage, at_start);
  for (std::string_view piece : pieces) model.encode_word(piece, ids);
}

auto Tokenizer::Impl::create(const nlohmann::json& j, const nlohmann::json& config)
    -> Expected<std::shared_ptr<Impl>> {
  if (!j.is_object()) return invalid_argument("tokenizer.json: expected a JSON object");
  auto impl = std::make_shared<Impl>();

  const nlohmann::json kNull;
  auto section = [&](const char* key) -> const nlohmann::json& {
    auto it = j.find(key);
    return it == j.end() ? kNull : *it;
  };
  if (!section("model").is_object()) return invalid_argument("model: missing or not an object");
  TIDAL_ASSIGN_OR_RETURN(impl->normalizer, Normalizer::from_json(section("normalizer"), "normalizer"));
  TIDAL_ASSIGN_OR_RETURN(impl->pre_tokenizer,
                         PreTokenizer::from_json(section("pre_tokenizer"), "pre_tokenizer"));
  // Without a ByteLevel pre-tokenizer the vocab is SentencePiece-style (characters, "▁", <0xXX>).
  const bool byte_level = impl->pre_tokenizer.has_byte_level();
  TIDAL_ASSIGN_OR_RETURN(impl->decoder, Decoder::from_json(section("decoder"), "decoder"));
  TIDAL_ASSIGN_OR_RETURN(impl->model, BpeModel::from_json(section("model"), "model", byte_level));
  TIDAL_ASSIGN_OR_RETURN(impl->added, AddedVocabulary::from_json(section("added_tokens"), "added_tokens"));
  TIDAL_RETURN_IF_ERROR(add_post_processor(section("post_processor"), "post_processor",
                                           impl->prefix_ids, impl->suffix_ids));

  // Per-id decode bytes. tokenizers' ByteLevel decoder maps a token through the byte alphabet
  // when every character is in it, and otherwise keeps the token's own UTF-8 bytes.
  const auto& model_tokens = impl->model.id_to_token();
  size_t n_ids = model_tokens.size();
  for (const AddedToken& t : impl->added.tokens()) n_ids = std::max(n_ids, static_cast<size_t>(t.id) + 1);
  impl->id_bytes.assign(n_ids, std::string());
  impl->id_tokens.assign(n_ids, std::string());
  impl->is_special.assign(n_ids, 0);
  const bool byte_decoder = impl->decoder.is_byte_level();
  auto set_token = [&](int32_t id, const std::string& token) {
    std::string& bytes = impl->id_bytes[static_cast<size_t>(id)];
    bytes.clear();
    if (!byte_decoder) bytes = impl->decoder.stream_token(token, /*first=*/false);
    else if (!byte_level::decode(token, bytes)) bytes = token;
    impl->id_tokens[static_cast<size_t>(id)] = token;
    impl->token_to_id[token] = id;
  };
  for (size_t id = 0; id < model_tokens.size(); ++id) {
    if (!model_tokens[id].empty()) set_token(static_cast<int32_t>(id), model_tokens[id]);
  }
  for (const AddedToken& t : impl->added.tokens()) {
    set_token(t.id, t.content);
    impl->is_special[static_cast<size_t>(t.id)] = t.special ? 1 : 0;
    if (t.normalized) impl->has_normalized_added = true;
  }
  for (int32_t id : impl->prefix_ids) {
    if (id < 0 || static_cast<size_t>(id) >= n_ids) return invalid_argument("post_processor: id out of range");
  }
  for (int32_t id : impl->suffix_ids) {
    if (id < 0 || static_cast<size_t>(id) >= n_ids) return invalid_argument("post_processor: id out of range");
  }

  if (config.is_object()) {
    auto lookup = [&](const char* key) -> Expected<std::optional<int32_t>> {
      const auto token = config_token(config, key);
      if (!token) return std::optional<int32_t>();
      auto it = impl->token_to_id.find(*token);
      if (it == impl->token_to_id.end()) {
        return invalid_argument(std::string("tokenizer_config.json: ") + key + " \"" + *token +
                                "\" is not a token of tokenizer.json");
      }
      return std::optional<int32_t>(it->second);
    };
    TIDAL_ASSIGN_OR_RETURN(impl->bos, lookup("bos_token"));
    TIDAL_ASSIGN_OR_RETURN(impl->eos, lookup("eos_token"));
    // add_bos_token overrides the post-processor about BOS (as transformers' Llama tokenizers do).
    auto add_bos = config.find("add_bos_token");
    if (add_bos != config.end() && add_bos->is_boolean() && impl->bos) {
      const bool has_bos = !impl->prefix_ids.empty() && impl->prefix_ids.front() == *impl->bos;
      if (add_bos->get<bool>() && !has_bos) impl->prefix_ids.insert(impl->prefix_ids.begin(), *impl->bos);
      if (!add_bos->get<bool>() && has_bos) impl->prefix_ids.erase(impl->prefix_ids.begin());
    }
  }
  return impl;
}

Expected<Tokenizer> Tokenizer::from_json_text(std::string_view tokenizer_json,
                                              std::string_view tokenizer_config_json) {
  TIDAL_ASSIGN_OR_RETURN(json j, parse_json(tokenizer_json, "tokenizer.json"));
  json config;
  if (!tokenizer_config_json.empty()) {
    TIDAL_ASSIGN_OR_RETURN(config, parse_json(tokenizer_config_json, "tokenizer_config.json"));
  }
  try {
    TIDAL_ASSIGN_OR_RETURN(auto impl, Impl::create(j, config));
    return Tokenizer(std::move(impl));
  } catch (const json::exception& e) {
    // A field of an unexpected JSON type that the checks above did not name.
    return invalid_argument(std::string("tokenizer.json: unexpected JSON type: ") + e.what());
  }
}

Expected<Tokenizer> Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path json_path(path);
  if (fs::is_directory(json_path, ec)) json_path /= "tokenizer.json";
  if (!fs::exists(json_path, ec)) return not_found(json_path.string() + ": no such file");
  TIDAL_ASSIGN_OR_RETURN(std::string text, read_file(json_path));
  std::string config_text;
  const fs::path config_path = json_path.parent_path() / "tokenizer_config.json";
  if (fs::exists(config_path, ec)) {
    TIDAL_ASSIGN_OR_RETURN(config_text, read_file(config_path));
  }
  auto tokenizer = from_json_text(text, config_text);
  if (!tokenizer) {
    return Status(tokenizer.status().code(), json_path.string() + ": " + tokenizer.status().message());
  }
  return tokenizer;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::string clean;
  if (!utf8::is_valid(text)) {
    utf8::append_lossy(text, clean);
    text = clean;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids = m.prefix_ids;

  std::vector<AddedVocabulary::Segment> raw_segments, norm_segments;
  m.added.split(text, /*normalized=*/false, raw_segments);
  for (const auto& seg : raw_segments) {
    if (seg.id >= 0) { ids.push_back(seg.id); continue; }
    const std::string_view part = text.substr(seg.start, seg.end - seg.start);
    if (m.normalizer.is_identity() && !m.has_normalized_added) {
      m.encode_model(part, seg.start == 0, ids);
      continue;
    }
    const std::string normalized = m.normalizer.apply(part);
    norm_segments.clear();
    m.added.split(normalized, /*normalized=*/true, norm_segments);
    for (const auto& sub : norm_segments) {
      if (sub.id >= 0) ids.push_back(sub.id);
      else m.encode_model(std::string_view(normalized).substr(sub.start, sub.end - sub.start),
                          seg.start == 0 && sub.start == 0, ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), m.suffix_ids.begin(), m.suffix_ids.end());
  return ids;
}

bool Tokenizer::append_token_bytes(int32_t id, bool skip_special_tokens, bool first, std::string& out) const {
  const Impl& m = *impl_;
  if (id < 0 || static_cast<size_t>(id) >= m.id_bytes.size() || m.id_tokens[static_cast<size_t>(id)].empty()) {
    return false;
  }
  if (skip_special_tokens && m.is_special[static_cast<size_t>(id)]) return false;
  if (first && !m.decoder.is_byte_level()) out.append(m.decoder.stream_token(m.id_tokens[static_cast<size_t>(id)], /*first=*/true));
  else out.append(m.id_bytes[static_cast<size_t>(id)]);
  return true;
}

const Decoder& Tokenizer::decoder() const { return impl_->decoder; }

bool Tokenizer::stream_matches_decode() const { return impl_->decoder.stream_exact(); }

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  if (!m.decoder.is_byte_level()) {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= m.id_tokens.size() || m.id_tokens[static_cast<size_t>(id)].empty()) continue;
      if (skip_special_tokens && m.is_special[static_cast<size_t>(id)]) continue;
      tokens.push_back(m.id_tokens[static_cast<size_t>(id)]);
    }
    return m.decoder.decode_chain(std::move(tokens));
  }
  std::string bytes;
  for (int32_t id : ids) append_token_bytes(id, skip_special_tokens, false, bytes);
  std::string text;
  text.reserve(bytes.size());
  utf8::append_lossy(bytes, text);
  return text;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_bytes.size()); }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->token_to_id.find(token);
  if (it == impl_->token_to_id.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

}  // namespace tidal
