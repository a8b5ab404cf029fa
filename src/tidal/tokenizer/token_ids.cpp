#include "tidal/tokenizer/token_ids.h"

#include <fstream>
#include <sstream>

namespace tidal {

namespace {

bool is_separator(char c) { return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

Expected<std::vector<int32_t>> parse_token_ids(std::string_view text, int64_t vocab_size) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (is_separator(text[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && !is_separator(text[end])) ++end;
    const std::string_view item = text.substr(i, end - i);
    int64_t v = 0;
    bool ok = item.size() <= 10;  // at most 10 digits: v stays far inside int64
    for (size_t k = 0; ok && k < item.size(); ++k) {
      ok = item[k] >= '0' && item[k] <= '9';
      v = v * 10 + (item[k] - '0');
    }
    const std::string where = "token id #" + std::to_string(ids.size()) + " '" + std::string(item.substr(0, 32)) +
                              (item.size() > 32 ? "...'" : "'");
    if (!ok || v > INT32_MAX) return invalid_argument(where + " is not a non-negative 32-bit integer");
    if (vocab_size > 0 && v >= vocab_size) {
      return invalid_argument(where + " is not below the vocabulary size " + std::to_string(vocab_size));
    }
    ids.push_back(static_cast<int32_t>(v));
    i = end;
  }
  if (ids.empty()) return invalid_argument("token id list is empty");
  return ids;
}

Expected<std::vector<int32_t>> read_token_ids(const std::string& path, int64_t vocab_size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path + ": cannot open token id file");
  std::stringstream ss;
  ss << in.rdbuf();
  auto ids = parse_token_ids(ss.str(), vocab_size);
  if (!ids) return Status(ids.status().code(), path + ": " + ids.status().message());
  return ids;
}

}  // namespace tidal
