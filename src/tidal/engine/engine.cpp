#include "tidal/engine/engine.h"

#include <algorithm>
#include <chrono>

#include "tidal/kernels/ops.h"

namespace tidal {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kNone: break;
  }
  return "";
}

Expected<std::unique_ptr<Engine>> Engine::create(const EngineConfig& config) {
  if (config.block_size < 1 || config.block_size > 1024) {
    return invalid_argument("engine: block size must be in [1, 1024], got " + std::to_string(config.block_size));
  }
  if (config.max_num_batched_tokens < 1 || config.max_num_seqs < 1) {
    return invalid_argument("engine: max_num_batched_tokens and max_num_seqs must be >= 1");
  }
  std::unique_ptr<Engine> e(new Engine());
  e->config_ = config;
  auto model = Model::load(config.model_dir, {.n_threads = config.n_threads, .quantization = config.quantization});
  if (!model) return model.status();
  e->model_ = std::move(model).value();
  const ModelConfig& c = e->model_->config();
  auto tok = Tokenizer::load(config.model_dir);
  if (tok) e->tokenizer_.emplace(std::move(tok).value());
  const DType kv_dtype = config.kv_dtype.value_or(e->model_->default_kv_dtype());
  if (!PagedKvStorage::supports(kv_dtype)) {
    return invalid_argument(std::string("engine: KV cache dtype ") + dtype_name(kv_dtype) +
                            " is not supported (F32, F16, BF16 or F8_E4M3)");
  }
  const uint64_t per_block = PagedKvStorage::bytes_per_token(c, kv_dtype) * uint64_t(config.block_size);
  const int64_t n_blocks = int64_t(config.kv_cache_bytes / per_block);
  if (n_blocks < 1) {
    return invalid_argument("engine: --kv-cache-memory " + std::to_string(config.kv_cache_bytes) +
                            " bytes holds no KV block (one block needs " + std::to_string(per_block) + " bytes)");
  }
  e->storage_ = std::make_unique<PagedKvStorage>(c, n_blocks, config.block_size, kv_dtype);
  e->kv_ = std::make_unique<KvCacheManager>(int32_t(n_blocks), config.block_size, config.prefix_caching);
  e->scheduler_ = std::make_unique<Scheduler>(
      SchedulerConfig{config.max_num_batched_tokens, config.max_num_seqs}, *e->kv_);
  for (int t = 0; t < e->model_->pool().n_threads(); ++t) e->samplers_.push_back(std::make_unique<Sampler>(c.vocab_size));
  e->eos_ids_ = c.eos_token_ids;
  if (e->tokenizer_ && e->tokenizer_->eos_id()) e->eos_ids_.push_back(*e->tokenizer_->eos_id());
  e->max_model_len_ = config.max_model_len > 0 ? config.max_model_len : c.max_position_embeddings;
  e->capacity_tokens_ = n_blocks * config.block_size;
  return e;
}

Expected<RequestId> Engine::add_request(std::vector<int32_t> prompt, const SamplingParams& params, int32_t priority) {
  const ModelConfig& c = model_->config();
  TIDAL_RETURN_IF_ERROR(params.validate(c.vocab_size));
  if (prompt.empty()) return invalid_argument("request: the prompt is empty");
  for (int32_t id : prompt) {
    if (id < 0 || id >= c.vocab_size) {
      return invalid_argument("request: prompt token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(c.vocab_size) + ")");
    }
  }
  if (int64_t(prompt.size()) >= max_model_len_) {
    return invalid_argument("request: prompt has " + std::to_string(prompt.size()) +
                            " tokens; the model's context is " + std::to_string(max_model_len_) +
                            " (prompt + at least one generated token)");
  }
  if (int64_t(prompt.size()) + 1 > capacity_tokens_) {
    return resource_exhausted("request: prompt of " + std::to_string(prompt.size()) +
                              " tokens does not fit the KV cache (" + std::to_string(capacity_tokens_) +
                              " tokens); raise --kv-cache-memory");
  }
  if (!params.stop.empty() && !tokenizer_) {
    return invalid_argument("request: stop strings need a tokenizer.json in the model folder");
  }
  auto shared = std::make_shared<const SamplingParams>(params);
  const RequestId id = next_id_++;
  const uint64_t base_seed = params.seed ? *params.seed : (seed_state_ = seed_state_ * 6364136223846793005ull + 1442695040888963407ull);
  auto& group = sequences_[id];
  const auto now = std::chrono::steady_clock::now();
  for (int32_t i = 0; i < params.n; ++i) {
    auto s = std::make_unique<Sequence>();
    s->request_id = id;
    s->index = i;
    s->priority = priority;
    s->arrival = arrival_++;
    s->params = shared;
    s->seed = base_seed + uint64_t(i) * 0x9e3779b97f4a7c15ull;
    s->tokens = prompt;
    s->n_prompt = int64_t(prompt.size());
    s->held = i > 0;  // samples > 0 reuse sample 0's prompt blocks through the prefix cache
    s->t_arrival = now;
    if (tokenizer_ && params.detokenize) s->text.emplace(*tokenizer_, params.stop);
    scheduler_->add(s.get());
    group.push_back(std::move(s));
  }
  return id;
}

void Engine::finish(Sequence& s, FinishReason reason) {
  s.finish = reason;
  if (s.text) s.text->finish();
  scheduler_->remove(&s);
}

void Engine::emit(Sequence& s, std::vector<RequestOutput>* out) {
  RequestOutput o;
  o.id = s.request_id;
  o.index = s.index;
  for (const auto& lp : s.pending) o.token_ids.push_back(lp.id);
  o.logprobs = std::move(s.pending);
  s.pending.clear();
  if (s.text) o.text = s.text->delta();
  o.finish = s.finish;
  o.n_prompt = s.n_prompt;
  o.n_cached_prompt = s.n_prefix_hit;
  o.weight_version = weight_version_;
  if (s.params->prompt_logprobs && !s.prompt_logprobs_sent && !o.token_ids.empty()) {
    o.prompt_logprobs = s.prompt_logprobs;
    s.prompt_logprobs_sent = true;
  }
  out->push_back(std::move(o));
}

std::vector<RequestOutput> Engine::step() {
  std::vector<RequestOutput> out = std::move(finished_outside_step_);
  finished_outside_step_.clear();
  std::vector<ScheduledChunk> chunks = scheduler_->schedule();
  if (chunks.empty()) return out;
  ++steps_;

  std::vector<SequenceChunk> batch;
  batch.reserve(chunks.size());
  for (const ScheduledChunk& ch : chunks) {
    Sequence& s = *ch.seq;
    // Prompt log-probabilities need a logits row for every prompt token of the chunk.
    const bool all = s.params->prompt_logprobs && s.n_computed < s.n_prompt;
    batch.push_back({KvSlots{storage_.get(), s.block_table, s.n_computed},
                     std::span(s.tokens).subspan(size_t(s.n_computed), size_t(ch.n_new)), all});
  }
  Status st = model_->forward(batch, &logits_);
  if (!st.is_ok()) {
    // Inputs were validated at add_request; a failure here is a bug. Fail the affected requests
    // rather than the process.
    for (const ScheduledChunk& ch : chunks) {
      finish(*ch.seq, FinishReason::kAbort);
      emit(*ch.seq, &out);
    }
    return out;
  }

  const int64_t V = model_->config().vocab_size;
  // Sequences that reached the end of their tokens this step, with their logits row: each gets
  // one sampled token.
  struct Draw {
    Sequence* seq;
    int64_t row;
    TokenLogprob lp;
  };
  std::vector<Draw> draws;
  int64_t row = 0;  // logits row of the current chunk's last token
  for (size_t i = 0; i < chunks.size(); ++i) {
    Sequence& s = *chunks[i].seq;
    const bool was_prefill = s.n_computed < s.n_prompt;
    if (batch[i].all_logits) {
      // Rows for positions n_computed .. n_computed + n_new - 1; row p predicts token p + 1.
      std::vector<float> lp(static_cast<size_t>(V));
      for (int64_t r = 0; r < chunks[i].n_new; ++r) {
        const int64_t pos = s.n_computed + r;
        if (pos + 1 >= s.n_prompt) break;
        if (pos < int64_t(s.prompt_logprobs.size())) continue;  // recomputed after a preemption
        ops::log_softmax(logits_.data() + (row + r) * V, lp.data(), V);
        s.prompt_logprobs.push_back(lp[size_t(s.tokens[size_t(pos + 1)])]);
      }
      row += chunks[i].n_new - 1;
    }
    s.n_computed += chunks[i].n_new;
    if (was_prefill) prompt_tokens_computed_ += std::min(s.n_computed, s.n_prompt) - (s.n_computed - chunks[i].n_new);
    kv_->cache_full_blocks(s);
    const int64_t my_row = row++;
    if (s.n_computed < s.n_tokens()) continue;  // a prefill chunk that did not reach the end

    // Release the other samples of this request once the prompt's blocks are cached.
    if (s.index == 0 && s.n_output() == 0) {
      for (auto& sib : sequences_[s.request_id]) sib->held = false;
    }
    draws.push_back({&s, my_row, {}});
  }

  // Sampling depends only on a sequence's own logits row, parameters, tokens and seed, so the
  // draws are split across the compute threads (each with its own sampler's scratch) and the
  // result is the same whatever the split.
  auto sample_range = [&](Sampler& sampler, int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) {
      Draw& dr = draws[size_t(d)];
      sampler.sample(logits_.data() + dr.row * V, *dr.seq, &dr.lp);
    }
  };
  if (draws.size() < 2 || samplers_.size() < 2) {
    sample_range(*samplers_[0], 0, int64_t(draws.size()));
  } else {
    model_->pool().run([&](int ith, int nth) {
      int64_t begin, end;
      ThreadPool::split(int64_t(draws.size()), ith, nth, 1, &begin, &end);
      sample_range(*samplers_[size_t(ith)], begin, end);
    });
  }

  for (Draw& dr : draws) {
    Sequence& s = *dr.seq;
    const int32_t tok = dr.lp.id;
    if (s.n_output() == 0) s.t_first_token = std::chrono::steady_clock::now();
    s.tokens.push_back(tok);
    s.pending.push_back(std::move(dr.lp));
    ++generated_tokens_;

    const SamplingParams& p = *s.params;
    FinishReason reason = FinishReason::kNone;
    if (s.text && s.text->push(tok)) reason = FinishReason::kStop;
    if (!p.ignore_eos && std::find(eos_ids_.begin(), eos_ids_.end(), tok) != eos_ids_.end()) reason = FinishReason::kStop;
    if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), tok) != p.stop_token_ids.end()) {
      reason = FinishReason::kStop;
    }
    if (reason == FinishReason::kNone &&
        (s.n_output() >= p.max_tokens || s.n_tokens() >= max_model_len_ || s.n_tokens() >= capacity_tokens_)) {
      reason = FinishReason::kLength;
    }
    if (reason != FinishReason::kNone) finish(s, reason);
  }
  // Outputs, and forget finished requests.
  for (const ScheduledChunk& ch : chunks) {
    Sequence& s = *ch.seq;
    if (!s.pending.empty() || s.finished()) emit(s, &out);
  }
  for (auto it = sequences_.begin(); it != sequences_.end();) {
    bool all_done = std::all_of(it->second.begin(), it->second.end(), [](const auto& s) { return s->finished(); });
    it = all_done ? sequences_.erase(it) : std::next(it);
  }
  return out;
}

bool Engine::abort(RequestId id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return false;
  for (auto& s : it->second) {
    if (s->finished()) continue;
    finish(*s, FinishReason::kAbort);
    emit(*s, &finished_outside_step_);
  }
  sequences_.erase(it);
  return true;
}

std::vector<RequestOutput> Engine::take_pending_outputs() {
  std::vector<RequestOutput> out = std::move(finished_outside_step_);
  finished_outside_step_.clear();
  return out;
}

void Engine::flush_prefix_cache() { kv_->flush_prefix_cache(); }

Status Engine::update_weights(const std::string& path, std::optional<uint64_t> version) {
  TIDAL_RETURN_IF_ERROR(model_->reload_weights(path));
  kv_->flush_prefix_cache();
  weight_version_ = version ? *version : weight_version_ + 1;
  return Status::ok();
}

EngineStats Engine::stats() const {
  EngineStats st;
  st.n_running = int64_t(scheduler_->n_running());
  st.n_waiting = int64_t(scheduler_->n_waiting());
  st.kv_blocks_total = kv_->pool().n_blocks();
  st.kv_blocks_used = kv_->pool().n_used();
  st.prefix_query_tokens = kv_->prefix_query_tokens();
  st.prefix_hit_tokens = kv_->prefix_hit_tokens();
  st.prompt_tokens_computed = prompt_tokens_computed_;
  st.generated_tokens = generated_tokens_;
  st.preemptions = scheduler_->n_preemptions();
  st.steps = steps_;
  return st;
}

}  // namespace tidal
