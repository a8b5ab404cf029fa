// Sequence: one sample of one request as the scheduler sees it — a handful of integers
// (n_prompt, n_computed) plus its tokens, block table and output state. A request with n > 1
// samples is n sequences sharing a request id (index 0..n-1).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "tidal/engine/sampling_params.h"
#include "tidal/engine/text_stream.h"

namespace tidal {

using RequestId = uint64_t;

enum class FinishReason { kNone, kStop, kLength, kAbort };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", ""

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;           // raw model distribution (temperature 1, no penalties)
  float sampling_logprob = 0;  // the distribution actually sampled from
  std::vector<std::pair<int32_t, float>> top;  // top-`logprobs` ids of the raw distribution
};

struct Sequence {
  RequestId request_id = 0;
  int32_t index = 0;        // sample index within the request
  int32_t priority = 0;     // lower runs first; FCFS within a priority
  uint64_t arrival = 0;     // engine-wide arrival counter
  std::shared_ptr<const SamplingParams> params;
  uint64_t seed = 0;

  std::vector<int32_t> tokens;  // prompt followed by generated tokens
  int64_t n_prompt = 0;
  int64_t n_computed = 0;       // tokens whose K/V are in the cache
  std::vector<int32_t> block_table;
  std::vector<uint64_t> block_hashes;  // chain hashes of the full blocks of `tokens` so far
  int64_t n_cached_blocks = 0;         // leading blocks registered in the prefix cache
  int64_t n_prefix_hit = 0;            // prompt tokens served by the prefix cache (first schedule)
  int64_t n_preemptions = 0;
  bool running = false;
  bool held = false;  // sample > 0 waits until sample 0 has computed the prompt (to share its KV)

  FinishReason finish = FinishReason::kNone;
  std::optional<TextStream> text;
  std::vector<TokenLogprob> pending;  // generated since the last step's output
  std::vector<float> prompt_logprobs; // log p(prompt[i+1] | prompt[..i]), when requested
  bool prompt_logprobs_sent = false;
  std::chrono::steady_clock::time_point t_arrival, t_first_token;

  int64_t n_tokens() const { return int64_t(tokens.size()); }
  int64_t n_output() const { return n_tokens() - n_prompt; }
  bool finished() const { return finish != FinishReason::kNone; }
};

}  // namespace tidal
