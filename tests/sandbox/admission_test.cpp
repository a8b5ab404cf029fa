// AdmissionQueue: slots, a bounded queue with deadlines, round-robin fairness across groups.
#include "tidal/sandbox/admission.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tidal/sandbox/cgroup.h"

namespace tidal::sandbox {
namespace {

using namespace std::chrono_literals;
using Outcome = AdmissionQueue::Outcome;

void wait_until_waiting(const AdmissionQueue& q, int64_t n) {
  for (int i = 0; i < 2000 && q.waiting() != n; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(q.waiting(), n);
}

TEST(Admission, SlotsThenQueueThenRefusal) {
  AdmissionQueue q(2, 1);
  EXPECT_EQ(q.acquire("", 0ms), Outcome::kAdmitted);
  EXPECT_EQ(q.acquire("", 0ms), Outcome::kAdmitted);
  EXPECT_EQ(q.acquire("", 0ms), Outcome::kQueueFull);  // no slot, not willing to wait
  EXPECT_EQ(q.acquire("", 20ms), Outcome::kTimedOut);  // waited, nothing freed
  EXPECT_EQ(q.waiting(), 0);
  std::thread waiter([&] { EXPECT_EQ(q.acquire("", 10s), Outcome::kAdmitted); });
  wait_until_waiting(q, 1);
  EXPECT_EQ(q.acquire("", 10s), Outcome::kQueueFull);  // the queue (1) is full
  EXPECT_GE(q.retry_after_s(), 1);
  q.release();  // the waiter gets it
  waiter.join();
  EXPECT_EQ(q.in_use(), 2);
  q.release();
  q.release();
  EXPECT_EQ(q.in_use(), 0);
}

TEST(Admission, UnlimitedAndClose) {
  AdmissionQueue unlimited(0, 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(unlimited.acquire("", 0ms), Outcome::kAdmitted);
  AdmissionQueue q(1, 8);
  ASSERT_EQ(q.acquire("", 0ms), Outcome::kAdmitted);
  std::thread waiter([&] { EXPECT_EQ(q.acquire("", 10s), Outcome::kClosed); });
  wait_until_waiting(q, 1);
  q.close();
  waiter.join();
  EXPECT_EQ(q.acquire("", 1s), Outcome::kClosed);
}

TEST(Admission, GroupsTakeTurnsAndEachIsFifo) {
  AdmissionQueue q(1, 100);
  ASSERT_EQ(q.acquire("", 0ms), Outcome::kAdmitted);
  std::mutex mu;
  std::vector<std::string> order;
  std::vector<std::thread> threads;
  // Group "a" queues 4 requests before "b" queues 2 and "c" 1.
  auto enqueue = [&](const std::string& group, int i) {
    threads.emplace_back([&, group, i] {
      ASSERT_EQ(q.acquire(group, 10s), Outcome::kAdmitted);
      {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(group + std::to_string(i));
      }
      q.release();
    });
    wait_until_waiting(q, static_cast<int64_t>(threads.size()));
  };
  for (int i = 0; i < 4; ++i) enqueue("a", i);
  for (int i = 0; i < 2; ++i) enqueue("b", i);
  enqueue("c", 0);
  q.release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<std::string>{"a0", "b0", "c0", "a1", "b1", "a2", "a3"}));
}

TEST(Admission, CpuSharesFollowTheQuota) {
  EXPECT_EQ(cpu_shares(1000), 1024);  // one core: the kernel's default weight
  EXPECT_EQ(cpu_shares(500), 512);
  EXPECT_EQ(cpu_shares(10), 10);
  EXPECT_EQ(cpu_shares(1), 2);
  EXPECT_EQ(cpu_weight(1000), 100);
  EXPECT_EQ(cpu_weight(250), 25);
  EXPECT_EQ(cpu_weight(5), 1);
  EXPECT_EQ(cpu_weight(64000), 6400);
}

}  // namespace
}  // namespace tidal::sandbox
