// SamplingParams: how one request turns logits into tokens, and when it stops.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tidal/core/status.h"

namespace tidal {

struct SamplingParams {
  int32_t n = 1;                     // parallel samples sharing the prompt's KV
  double temperature = 1.0;          // 0 = greedy
  int32_t top_k = -1;                // -1 (or 0) = all tokens
  double top_p = 1.0;                // (0, 1]
  double min_p = 0.0;                // [0, 1]
  double repetition_penalty = 1.0;   // > 0; applied over prompt + output tokens
  double presence_penalty = 0.0;     // [-2, 2]; output tokens
  double frequency_penalty = 0.0;    // [-2, 2]; output tokens
  std::optional<uint64_t> seed;      // absent: the engine draws one
  int32_t max_tokens = 16;           // >= 1
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;     // stop strings (not included in the output text)
  bool ignore_eos = false;
  int32_t logprobs = 0;              // top alternatives to return per generated token (0..20)
  bool prompt_logprobs = false;      // also return log p(prompt[i+1] | prompt[..i]) (disables prefix-cache hits)
  bool detokenize = true;            // produce text deltas

  // Checks every field; the message names the parameter and the allowed range.
  Status validate(int64_t vocab_size) const;
};

}  // namespace tidal
