#include "tidal/engine/scheduler.h"

#include <algorithm>

namespace tidal {

namespace {
bool before(const Sequence* a, const Sequence* b) {
  return a->priority != b->priority ? a->priority < b->priority : a->arrival < b->arrival;
}
}  // namespace

void Scheduler::insert_waiting(Sequence* s) {
  s->running = false;
  auto it = std::upper_bound(waiting_.begin(), waiting_.end(), s, before);
  waiting_.insert(it, s);
}

void Scheduler::add(Sequence* s) { insert_waiting(s); }

void Scheduler::remove(Sequence* s) {
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), s), waiting_.end());
  kv_.free(*s);
  s->running = false;
}

void Scheduler::preempt(Sequence* s) {
  running_.erase(std::remove(running_.begin(), running_.end(), s), running_.end());
  kv_.free(*s);
  s->n_computed = 0;
  ++s->n_preemptions;
  ++n_preemptions_;
  insert_waiting(s);
}

std::vector<ScheduledChunk> Scheduler::schedule() {
  std::vector<ScheduledChunk> out;
  int64_t budget = config_.max_num_batched_tokens;
  bool preempted = false;

  // 1. Running sequences, in admission order.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* s = running_[i];
    const int64_t n_new = std::min(s->n_tokens() - s->n_computed, budget);
    if (n_new <= 0) { ++i; continue; }
    bool scheduled = false;
    while (true) {
      if (kv_.allocate_slots(*s, n_new)) { scheduled = true; break; }
      // Out of blocks: preempt the lowest-priority, newest running sequence (maybe s itself).
      Sequence* victim = *std::max_element(running_.begin(), running_.end(), before);
      preempted = true;
      // Never preempt a sequence already scheduled this step: its blocks are in use.
      bool in_step = std::any_of(out.begin(), out.end(), [&](const ScheduledChunk& c) { return c.seq == victim; });
      if (in_step) victim = s;
      preempt(victim);
      if (victim == s) break;
    }
    if (!scheduled) continue;  // s left running_; index i now holds the next one
    out.push_back({s, n_new});
    budget -= n_new;
    ++i;
  }

  // 2. Waiting sequences, unless this step had to preempt (no room to admit more).
  if (!preempted) {
    for (auto it = waiting_.begin(); it != waiting_.end() && budget > 0 &&
                                     int32_t(running_.size()) < config_.max_num_seqs;) {
      Sequence* s = *it;
      if (s->held) { ++it; continue; }
      std::vector<int32_t> hits = kv_.find_cached_prefix(*s);
      const int64_t bs = kv_.pool().block_size();
      const int64_t n_new = std::min(s->n_tokens() - s->n_computed - int64_t(hits.size()) * bs, budget);
      if (!kv_.allocate_slots(*s, n_new, hits)) break;  // no room: keep FCFS order, stop admitting
      if (s->n_preemptions == 0) s->n_prefix_hit = int64_t(hits.size()) * bs;
      it = waiting_.erase(it);
      s->running = true;
      running_.push_back(s);
      out.push_back({s, n_new});
      budget -= n_new;
    }
  }
  return out;
}

}  // namespace tidal
