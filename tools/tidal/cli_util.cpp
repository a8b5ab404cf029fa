#include "cli_util.h"

#include <cerrno>
#include <cstdlib>

namespace tidal::cli {

Expected<std::vector<int32_t>> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    char* end = nullptr;
    errno = 0;
    long long v = item.empty() ? 0 : std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || v < 0 || v > INT32_MAX) {
      return invalid_argument("token id list: '" + item + "' is not a non-negative 32-bit integer");
    }
    ids.push_back(int32_t(v));
    start = comma + 1;
  }
  return ids;
}

int fail(const Args& args, const Status& status) {
  args.error(status.message());
  return 1;
}

int threads_flag(Args& args) {
  long long n = args.get_int("threads", 0);
  return n < 0 ? 0 : int(n);
}

}  // namespace tidal::cli
