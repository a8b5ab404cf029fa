// Sampler: turns one row of logits into a token for one sequence.
//
// Order: penalties (repetition over prompt + output; presence/frequency over output) ->
// temperature (0 = greedy: argmax, lowest id on ties) -> top-k -> top-p -> min-p -> draw.
// The draw uses a counter-based RNG: u = H(seed, index of the token in the output), so a
// sequence's samples never depend on which other sequences share the batch.
//
// Log-probabilities (natural log, full vocabulary):
//   logprob           of the raw model distribution: log_softmax(logits) — what a trainer computes
//   sampling_logprob  of the distribution actually sampled from (after penalties, temperature
//                     and filtering); 0 for greedy.
// Both are needed in RL: the raw one for the policy ratio, the sampling one for importance
// correction when temperature != 1.
#pragma once

#include <cstdint>
#include <vector>

#include "tidal/engine/sequence.h"

namespace tidal {

class Sampler {
 public:
  explicit Sampler(int64_t vocab_size) : vocab_(vocab_size) {}
  // Picks the next token of s from `logits` (vocab floats) and fills *lp.
  int32_t sample(const float* logits, const Sequence& s, TokenLogprob* lp);

  static double uniform(uint64_t seed, uint64_t counter);

 private:
  int64_t vocab_;
  std::vector<float> work_, prob_, prob_id_;
  std::vector<int32_t> order_, counts_;
};

}  // namespace tidal
