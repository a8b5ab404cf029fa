#include "tidal/sandbox/admission.h"

#include <algorithm>

namespace tidal::sandbox {

AdmissionQueue::Outcome AdmissionQueue::acquire(const std::string& group, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return Outcome::kClosed;
  if (capacity_ <= 0 || (in_use_ < capacity_ && waiting_ == 0)) {
    ++in_use_;
    return Outcome::kAdmitted;
  }
  if (wait.count() <= 0 || waiting_ >= max_waiting_) return Outcome::kQueueFull;
  Waiter w;
  groups_[group].push_back(&w);
  ++waiting_;
  hand_out_locked();  // a slot may be free (waiters ahead of us were just served)
  auto deadline = std::chrono::steady_clock::now() + wait;
  cv_.wait_until(lock, deadline, [&] { return w.admitted || closed_; });
  if (w.admitted) return Outcome::kAdmitted;
  auto it = groups_.find(group);
  if (it != groups_.end()) {
    auto& q = it->second;
    q.erase(std::remove(q.begin(), q.end(), &w), q.end());
    if (q.empty()) groups_.erase(it);
  }
  --waiting_;
  return closed_ ? Outcome::kClosed : Outcome::kTimedOut;
}

void AdmissionQueue::hand_out_locked() {
  bool woke = false;
  while (in_use_ < capacity_ && !groups_.empty()) {
    // The next group after the one served last, wrapping around.
    auto it = groups_.upper_bound(last_group_);
    if (it == groups_.end()) it = groups_.begin();
    Waiter* w = it->second.front();
    it->second.pop_front();
    last_group_ = it->first;
    if (it->second.empty()) groups_.erase(it);
    w->admitted = true;
    --waiting_;
    ++in_use_;
    woke = true;
  }
  if (woke) cv_.notify_all();
}

void AdmissionQueue::release() {
  std::lock_guard<std::mutex> lock(mu_);
  if (in_use_ > 0) --in_use_;
  hand_out_locked();
}

void AdmissionQueue::take() {
  std::lock_guard<std::mutex> lock(mu_);
  ++in_use_;
}

void AdmissionQueue::close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

int64_t AdmissionQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

int64_t AdmissionQueue::in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

int64_t AdmissionQueue::retry_after_s() const {
  std::lock_guard<std::mutex> lock(mu_);
  return 1 + (capacity_ > 0 ? waiting_ / capacity_ : 0);
}

}  // namespace tidal::sandbox
