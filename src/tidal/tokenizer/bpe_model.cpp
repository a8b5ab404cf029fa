#include "tidal/tokenizer/bpe_model.h"

#include <queue>

#include <nlohmann/json.hpp>

#include "tidal/tokenizer/byte_level.h"
#include "tidal/tokenizer/token_ids.h"

namespace tidal {

Expected<BpeModel> BpeModel::from_json(const nlohmann::json& j, const std::string& field, bool byte_level) {
  if (!j.is_object()) return invalid_argument(field + ": expected an object");
  const std::string type = j.value("type", std::string("BPE"));
  if (type != "BPE") return unimplemented(field + ".type: model \"" + type + "\" is not supported yet");
  if (j.contains("dropout") && !j["dropout"].is_null()) {
    return unimplemented(field + ".dropout: BPE dropout is not supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()) {
      return unimplemented(field + "." + key + ": not supported yet");
    }
  }
  const auto vocab = j.find("vocab");
  if (vocab == j.end() || !vocab->is_object()) return invalid_argument(field + ".vocab: expected an object");

  BpeModel m;
  auto flag = [&](const char* key) { return j.contains(key) && j[key].is_boolean() && j[key].get<bool>(); };
  m.ignore_merges_ = flag("ignore_merges");
  m.byte_level_ = byte_level;
  m.byte_fallback_ = flag("byte_fallback");
  m.fuse_unk_ = flag("fuse_unk");
  StringIdMap token_to_id;
  token_to_id.reserve(vocab->size());
  int32_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0) {
      return invalid_argument(field + ".vocab[\"" + it.key() + "\"]: expected a non-negative id");
    }
    if (it.value().get<int64_t>() > kMaxTokenId) {
      return invalid_argument(field + ".vocab[\"" + it.key() + "\"]: id " + it.value().dump() +
                              " is above the largest supported token id " + std::to_string(kMaxTokenId));
    }
    const int32_t id = it.value().get<int32_t>();
    token_to_id[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  m.id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  m.byte_to_id_.fill(-1);
  m.byte_fallback_id_.fill(-1);
  m.bytes_to_id_.reserve(token_to_id.size());
  std::string bytes;
  static const char* kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string name = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";  // Rust's {:#04X}
    auto it = token_to_id.find(name);
    if (it != token_to_id.end()) m.byte_fallback_id_[static_cast<size_t>(b)] = it->second;
  }
  for (const auto& [token, id] : token_to_id) {
    m.id_to_token_[static_cast<size_t>(id)] = token;
    if (!byte_level) {
      m.bytes_to_id_[token] = id;
      continue;
    }
    bytes.clear();
    // A token outside the byte-level alphabet can never come out of a byte-level split; it stays
    // decodable (by id) but is not a merge target.
    if (!byte_level::decode(token, bytes)) continue;
    m.bytes_to_id_[bytes] = id;
    if (bytes.size() == 1) m.byte_to_id_[static_cast<unsigned char>(bytes[0])] = id;
  }

  if (j.contains("unk_token") && j["unk_token"].is_string()) {
    auto it = token_to_id.find(j["unk_token"].get<std::string>());
    if (it == token_to_id.end()) return invalid_argument(field + ".unk_token: not in the vocab");
    m.unk_id_ = it->second;
  }

  const auto merges = j.find("merges");
  if (merges == j.end() || !merges->is_array()) return invalid_argument(field + ".merges: expected an array");
  m.merges_.reserve(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const nlohmann::json& entry = (*merges)[rank];
    std::string a, b;
    if (entry.is_string()) {  // "a b"
      const std::string& s = entry.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) {
        return invalid_argument(field + ".merges[" + std::to_string(rank) + "]: expected \"a b\"");
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      return invalid_argument(field + ".merges[" + std::to_string(rank) + "]: expected \"a b\" or [a, b]");
    }
    const auto ia = token_to_id.find(a), ib = token_to_id.find(b), iab = token_to_id.find(a + b);
    if (ia == token_to_id.end() || ib == token_to_id.end() || iab == token_to_id.end()) {
      return invalid_argument(field + ".merges[" + std::to_string(rank) + "]: token \"" +
                              (ia == token_to_id.end() ? a : ib == token_to_id.end() ? b : a + b) +
                              "\" is not in the vocab");
    }
    // Later duplicates override earlier ones, as in tokenizers.
    m.merges_[pair_key(ia->second, ib->second)] = {static_cast<uint32_t>(rank), iab->second};
  }
  return m;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = bytes_to_id_.find(word);
    if (it != bytes_to_id_.end()) { out.push_back(it->second); return; }
  }
  // Symbols form a doubly linked list over the bytes; a merged-away symbol has len 0.
  struct Symbol { int32_t id; int32_t prev; int32_t next; uint32_t len; };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id, uint32_t len) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, len});
  };
  if (byte_level_) {
    for (unsigned char c : word) {
      int32_t id = byte_to_id_[c];
      if (id < 0) {
        if (!unk_id_) continue;  // tokenizers drops a symbol it cannot spell when there is no unk
        id = *unk_id_;
      }
      add(id, 1);
    }
  } else {
    // tokenizers' BPE::merge_word over characters, with byte fallback and (fused) unk.
    std::optional<uint32_t> pending_unk_len;
    for (size_t pos = 0; pos < word.size();) {
      size_t len = 1;
      const unsigned char lead = static_cast<unsigned char>(word[pos]);
      if (lead >= 0xF0) len = 4;
      else if (lead >= 0xE0) len = 3;
      else if (lead >= 0xC0) len = 2;
      len = std::min(len, word.size() - pos);
      const std::string_view ch = word.substr(pos, len);
      pos += len;
      auto it = bytes_to_id_.find(ch);
      if (it != bytes_to_id_.end()) {
        if (pending_unk_len) { add(*unk_id_, *pending_unk_len); pending_unk_len.reset(); }
        add(it->second, static_cast<uint32_t>(len));
        continue;
      }
      if (byte_fallback_) {
        bool all = true;
        for (unsigned char b : ch) all = all && byte_fallback_id_[b] >= 0;
        if (all) {
          for (unsigned char b : ch) add(byte_fallback_id_[b], 1);
          continue;
        }
      }
      if (!unk_id_) continue;
      if (pending_unk_len && fuse_unk_) {
        *pending_unk_len += static_cast<uint32_t>(len);
      } else {
        if (pending_unk_len) add(*unk_id_, *pending_unk_len);
        pending_unk_len = static_cast<uint32_t>(len);
      }
    }
    if (pending_unk_len) add(*unk_id_, *pending_unk_len);
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  if (symbols.size() == 1) { out.push_back(symbols[0].id); return; }

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (auto m = find_merge(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (left.len == 0 || left.next < 0) continue;
    const Symbol right = symbols[static_cast<size_t>(left.next)];
    // Stale entry: the pair at this position changed since it was queued.
    auto m = find_merge(left.id, right.id);
    if (!m || m->new_id != top.new_id) continue;
    symbols[static_cast<size_t>(left.next)].len = 0;
    left.id = top.new_id;
    left.len += right.len;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) {
      if (auto pm = find_merge(symbols[static_cast<size_t>(left.prev)].id, left.id)) {
        queue.push({pm->rank, left.prev, pm->new_id});
      }
    }
    if (left.next >= 0) {
      if (auto nm = find_merge(left.id, symbols[static_cast<size_t>(left.next)].id)) {
        queue.push({nm->rank, top.pos, nm->new_id});
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) out.push_back(symbols[i].id);
}

}  // namespace tidal
