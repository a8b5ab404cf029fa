// AdmissionQueue: a bounded number of slots (live sandboxes, running commands) and a bounded queue
// of callers waiting for one, with a deadline each. This is the service's backpressure: when the
// node is saturated a request waits its turn instead of being refused, and only a full queue
// (kQueueFull, HTTP 429) or a wait past the deadline (kTimedOut, HTTP 503) turns it away, both with
// a Retry-After hint.
//
// Fairness: waiters are grouped (by lease: one training job, one group); when a slot frees, the
// groups with waiters take turns round-robin, FIFO within a group, so a job that queued a thousand
// requests does not starve a job that queued one.
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace tidal::sandbox {

class AdmissionQueue {
 public:
  enum class Outcome { kAdmitted, kQueueFull, kTimedOut, kClosed };

  // capacity <= 0: unlimited (acquire always admits at once).
  AdmissionQueue(int64_t capacity, int64_t max_waiting) : capacity_(capacity), max_waiting_(max_waiting) {}

  // Takes a slot, waiting up to `wait` in `group`'s queue when none is free. wait <= 0: no waiting
  // (kQueueFull at once when no slot is free).
  Outcome acquire(const std::string& group, std::chrono::milliseconds wait);
  // Returns a slot taken by acquire() (or take()).
  void release();
  // Takes a slot even when none is free (a sandbox the service must keep, e.g. across a reset).
  void take();
  // Wakes every waiter with kClosed; later acquires fail with kClosed (shutdown).
  void close();

  int64_t waiting() const;
  int64_t in_use() const;
  int64_t capacity() const { return capacity_; }
  // A Retry-After hint in seconds for a refused request: longer the more are queued per slot.
  int64_t retry_after_s() const;

 private:
  struct Waiter {
    bool admitted = false;
  };
  void hand_out_locked();

  const int64_t capacity_, max_waiting_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t in_use_ = 0, waiting_ = 0;
  bool closed_ = false;
  std::map<std::string, std::deque<Waiter*>> groups_;  // groups with waiters, FIFO each
  std::string last_group_;                              // round-robin cursor
};

}  // namespace tidal::sandbox
