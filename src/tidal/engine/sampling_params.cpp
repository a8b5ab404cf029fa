#include "tidal/engine/sampling_params.h"

#include <cmath>

namespace tidal {

namespace {
Status bad(const std::string& name, const std::string& rule, const std::string& got) {
  return invalid_argument("sampling parameter '" + name + "' must be " + rule + ", got " + got);
}
std::string num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", x);
  return buf;
}
}  // namespace

Status SamplingParams::validate(int64_t vocab_size) const {
  if (n < 1 || n > 128) return bad("n", "in [1, 128]", std::to_string(n));
  if (!(temperature >= 0) || !std::isfinite(temperature)) return bad("temperature", ">= 0", num(temperature));
  if (top_k < -1) return bad("top_k", "-1 (disabled) or >= 0", std::to_string(top_k));
  if (!(top_p > 0 && top_p <= 1)) return bad("top_p", "in (0, 1]", num(top_p));
  if (!(min_p >= 0 && min_p <= 1)) return bad("min_p", "in [0, 1]", num(min_p));
  if (!(repetition_penalty > 0) || !std::isfinite(repetition_penalty)) {
    return bad("repetition_penalty", "> 0", num(repetition_penalty));
  }
  if (!(presence_penalty >= -2 && presence_penalty <= 2)) return bad("presence_penalty", "in [-2, 2]", num(presence_penalty));
  if (!(frequency_penalty >= -2 && frequency_penalty <= 2)) {
    return bad("frequency_penalty", "in [-2, 2]", num(frequency_penalty));
  }
  if (max_tokens < 1) return bad("max_tokens", ">= 1", std::to_string(max_tokens));
  if (logprobs < 0 || logprobs > 20) return bad("logprobs", "in [0, 20]", std::to_string(logprobs));
  for (int32_t id : stop_token_ids) {
    if (id < 0 || id >= vocab_size) return bad("stop_token_ids", "token ids in [0, vocab)", std::to_string(id));
  }
  for (const auto& s : stop) {
    if (s.empty()) return bad("stop", "non-empty strings", "\"\"");
  }
  return Status::ok();
}

}  // namespace tidal
