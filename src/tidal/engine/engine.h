// Engine: the step loop that serving and RL rollouts run on.
//
//   add_request(prompt ids, params) -> id      queue a request (n samples)
//   step() -> outputs                          schedule -> forward -> sample (one iteration)
//   abort(id)                                  at any time; frees its blocks
//
// Each step runs one forward pass over every scheduled sequence (continuous batching) and
// returns, per sequence that produced something, the new token ids, text delta, log-probs and
// finish reason. Results are batch-invariant: a request's tokens and logprobs are bit-identical
// whether it runs alone or with others, whatever the chunked-prefill split or prefix-cache hit
// (kernels reduce each dot product in a fixed order; the sampler's RNG is per sequence).
//
// Thread-safety: none. One thread drives the engine (the server gives it its own thread and
// talks to it through queues).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tidal/engine/kv_cache_manager.h"
#include "tidal/engine/sampler.h"
#include "tidal/engine/scheduler.h"
#include "tidal/model/model.h"
#include "tidal/tokenizer/tokenizer.h"

namespace tidal {

struct EngineConfig {
  std::string model_dir;
  int n_threads = 0;                    // 0: all cores
  uint64_t kv_cache_bytes = 1ull << 30; // KV budget (K and V, all layers); sets the block count
  int32_t block_size = 16;              // tokens per KV block
  std::optional<DType> kv_dtype;        // default: the weights' dtype (F32 stays F32, else 16-bit);
                                        // kF8E4M3: FP8 codes + per-(token, head) scales (kv_cache.h)
  int64_t max_num_batched_tokens = 512; // token budget per step
  int32_t max_num_seqs = 64;            // running sequences per step
  bool prefix_caching = true;
  int64_t max_model_len = 0;            // 0: config.max_position_embeddings
  QuantizationOptions quantization;     // quantize weights on load (model/quant_config.h)
};

struct RequestOutput {
  RequestId id = 0;
  int32_t index = 0;                  // sample index (n > 1)
  std::vector<int32_t> token_ids;     // new this step
  std::string text;                   // new text this step (UTF-8 complete, stop strings held back)
  std::vector<TokenLogprob> logprobs; // one per new token
  FinishReason finish = FinishReason::kNone;
  int64_t n_prompt = 0;
  int64_t n_cached_prompt = 0;        // prompt tokens served by the prefix cache
  // With params.prompt_logprobs, on the first output: n_prompt - 1 values, entry i is
  // log p(prompt[i+1] | prompt[..i]) (raw distribution); empty otherwise.
  std::vector<float> prompt_logprobs;
  // The weight version that produced this output's tokens (Engine::weight_version() at the step).
  uint64_t weight_version = 0;
  bool finished() const { return finish != FinishReason::kNone; }
};

struct EngineStats {
  int64_t n_running = 0, n_waiting = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0;
  int64_t prefix_query_tokens = 0, prefix_hit_tokens = 0;
  int64_t prompt_tokens_computed = 0, generated_tokens = 0;
  int64_t preemptions = 0, steps = 0;
  double kv_usage() const { return kv_blocks_total ? double(kv_blocks_used) / double(kv_blocks_total) : 0; }
  double prefix_hit_rate() const {
    return prefix_query_tokens ? double(prefix_hit_tokens) / double(prefix_query_tokens) : 0;
  }
};

class Engine {
 public:
  static Expected<std::unique_ptr<Engine>> create(const EngineConfig& config);

  // Errors (nothing queued): empty prompt, token id out of range, prompt longer than the
  // context (never truncated), a prompt that cannot fit the whole KV budget, bad parameters.
  Expected<RequestId> add_request(std::vector<int32_t> prompt, const SamplingParams& params, int32_t priority = 0);
  std::vector<RequestOutput> step();
  bool abort(RequestId id);  // false if unknown or already finished
  // Outputs produced outside step() (aborts) that step() would otherwise return next time.
  std::vector<RequestOutput> take_pending_outputs();
  bool has_unfinished() const { return !sequences_.empty(); }
  bool has_request(RequestId id) const { return sequences_.count(id) > 0; }
  // Forgets every cached prefix block (e.g. after a weight update made their K/V stale).
  void flush_prefix_cache();
  // New weights from `path` (folder or safetensors file); flushes the prefix cache. Sequences in
  // flight continue on the new weights (callers drain or abort them first for a clean version cut).
  // The weight version becomes `version`, or the current one + 1 when absent; on failure nothing
  // changes.
  Status update_weights(const std::string& path, std::optional<uint64_t> version = std::nullopt);
  // Starts at 0 (the weights loaded by create()); every output carries it (RequestOutput).
  uint64_t weight_version() const { return weight_version_; }
  EngineStats stats() const;

  const ModelConfig& model_config() const { return model_->config(); }
  const Tokenizer* tokenizer() const { return tokenizer_ ? &*tokenizer_ : nullptr; }
  Model& model() { return *model_; }
  int64_t max_model_len() const { return max_model_len_; }

 private:
  Engine() = default;
  void finish(Sequence& s, FinishReason reason);
  void emit(Sequence& s, std::vector<RequestOutput>* out);

  EngineConfig config_;
  std::unique_ptr<Model> model_;
  std::optional<Tokenizer> tokenizer_;
  std::unique_ptr<PagedKvStorage> storage_;
  std::unique_ptr<KvCacheManager> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<std::unique_ptr<Sampler>> samplers_;  // one per compute thread (sampling runs in parallel)
  std::vector<int32_t> eos_ids_;
  int64_t max_model_len_ = 0, capacity_tokens_ = 0;

  std::unordered_map<RequestId, std::vector<std::unique_ptr<Sequence>>> sequences_;
  std::vector<RequestOutput> finished_outside_step_;  // aborts between steps
  RequestId next_id_ = 1;
  uint64_t arrival_ = 0;
  uint64_t seed_state_ = 0x5eed;
  std::vector<float> logits_;
  int64_t prompt_tokens_computed_ = 0, generated_tokens_ = 0, steps_ = 0;
  uint64_t weight_version_ = 0;
};

}  // namespace tidal
