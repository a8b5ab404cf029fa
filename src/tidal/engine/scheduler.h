// Scheduler: continuous batching with no prefill/decode modes. Each step spends a token budget
// (max_num_batched_tokens) closing the gap between each sequence's n_computed and its token
// count: running sequences first (a decode needs 1 token), then waiting ones (chunked prefill,
// starting from their cached prefix). When blocks run out the lowest-priority, newest running
// sequence is preempted by recompute: its blocks are freed and it goes back to the waiting
// queue with its tokens (nothing is lost). The scheduler owns no tensors.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "tidal/engine/kv_cache_manager.h"
#include "tidal/engine/sequence.h"

namespace tidal {

struct SchedulerConfig {
  int64_t max_num_batched_tokens = 512;
  int32_t max_num_seqs = 64;
};

struct ScheduledChunk {
  Sequence* seq;
  int64_t n_new;  // tokens [seq->n_computed, seq->n_computed + n_new) run this step
};

class Scheduler {
 public:
  Scheduler(SchedulerConfig config, KvCacheManager& kv) : config_(config), kv_(kv) {}

  void add(Sequence* s);           // to the waiting queue, ordered by (priority, arrival)
  std::vector<ScheduledChunk> schedule();
  void remove(Sequence* s);        // finished or aborted: leaves the queues, frees its blocks

  size_t n_running() const { return running_.size(); }
  size_t n_waiting() const { return waiting_.size(); }
  int64_t n_preemptions() const { return n_preemptions_; }

 private:
  void preempt(Sequence* s);
  void insert_waiting(Sequence* s);

  SchedulerConfig config_;
  KvCacheManager& kv_;
  std::vector<Sequence*> running_;   // in admission order
  std::deque<Sequence*> waiting_;    // sorted by (priority, arrival)
  int64_t n_preemptions_ = 0;
};

}  // namespace tidal
