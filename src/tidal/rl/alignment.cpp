#include "tidal/rl/alignment.h"

#include <cmath>
#include <string>

#include "tidal/kernels/ops.h"

namespace tidal::rl {

Expected<AlignmentReport> measure_alignment(Trainer& trainer, Model& engine_model, DType kv_dtype,
                                            const std::vector<std::vector<int32_t>>& sequences) {
  const ModelConfig& c = engine_model.config();
  const int64_t V = c.vocab_size;
  if (trainer.model_config().vocab_size != V) {
    return invalid_argument("alignment: the engine's vocabulary (" + std::to_string(V) + ") differs from the trainer's (" +
                            std::to_string(trainer.model_config().vocab_size) + ")");
  }
  if (sequences.empty()) return invalid_argument("alignment: no sequences");
  AlignmentReport r;
  double sum_delta = 0, sum_kl = 0;
  std::vector<float> engine_lp(static_cast<size_t>(V));
  for (size_t si = 0; si < sequences.size(); ++si) {
    const std::vector<int32_t>& seq = sequences[si];
    if (seq.size() < 2) return invalid_argument("alignment: sequence " + std::to_string(si) + " has fewer than 2 tokens");
    const int64_t n = int64_t(seq.size());
    KvCache cache(c, n, kv_dtype);
    std::vector<float> logits;
    SequenceChunk chunk{cache.slots(), seq, true};
    Status st = engine_model.forward({&chunk, 1}, &logits);
    if (!st.is_ok()) return Status(st.code(), "alignment: sequence " + std::to_string(si) + ": " + st.message());
    TIDAL_ASSIGN_OR_RETURN(std::vector<float> trainer_lp, trainer.next_token_logprobs(seq));
    for (int64_t t = 0; t + 1 < n; ++t) {
      ops::log_softmax(logits.data() + t * V, engine_lp.data(), V);
      const float* tl = trainer_lp.data() + t * V;
      const int32_t next = seq[size_t(t + 1)];
      const double delta = std::fabs(double(engine_lp[size_t(next)]) - double(tl[next]));
      // KL(engine || trainer) = sum_v p_e (log p_e - log p_t), both rows renormalised in double
      // so that F32 rounding of the normalisation does not show up as (negative) divergence.
      double ze = 0, zt = 0;
      for (int64_t v = 0; v < V; ++v) {
        ze += std::exp(double(engine_lp[size_t(v)]));
        zt += std::exp(double(tl[v]));
      }
      const double lze = std::log(ze), lzt = std::log(zt);
      double kl = 0;
      for (int64_t v = 0; v < V; ++v) {
        const double le = double(engine_lp[size_t(v)]) - lze, lt = double(tl[v]) - lzt;
        kl += std::exp(le) * (le - lt);
      }
      sum_delta += delta;
      sum_kl += kl;
      r.max_kl = std::max(r.max_kl, kl);
      if (delta > r.max_abs_delta || r.worst_sequence < 0) {
        r.max_abs_delta = std::max(r.max_abs_delta, delta);
        r.worst_sequence = int64_t(si);
        r.worst_position = t + 1;
      }
      ++r.tokens;
    }
  }
  r.mean_abs_delta = sum_delta / double(r.tokens);
  r.kl = sum_kl / double(r.tokens);
  return r;
}

}  // namespace tidal::rl
