// Train/inference alignment: the engine's and the trainer's log-probabilities for the same token
// sequences. See docs/alignment.md for what makes them differ and the measured numbers.
#pragma once

#include <cstdint>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/model/model.h"
#include "tidal/rl/trainer.h"

namespace tidal::rl {

struct AlignmentReport {
  int64_t tokens = 0;          // scored positions (sum of n - 1 over sequences)
  double mean_abs_delta = 0;   // mean |engine logp - trainer logp| of the actual next tokens
  double max_abs_delta = 0;
  double kl = 0;               // mean over positions of KL(engine || trainer), full vocabulary
  double max_kl = 0;
  int64_t worst_sequence = -1, worst_position = -1;  // where max_abs_delta occurs
};

// Runs each sequence through the engine's forward pass (Model::forward, all logits, a KV cache
// of `kv_dtype`) and through the trainer (F32), and compares the next-token distributions.
// Sequences need >= 2 tokens, ids within both vocabularies.
Expected<AlignmentReport> measure_alignment(Trainer& trainer, Model& engine_model, DType kv_dtype,
                                            const std::vector<std::vector<int32_t>>& sequences);

}  // namespace tidal::rl
