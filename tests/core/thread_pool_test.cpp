#include "tidal/core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace tidal {
namespace {

TEST(ThreadPoolTest, EveryIndexRunsOncePerRegion) {
  for (int n : {1, 2, 3, 4}) {
    ThreadPool pool(n);
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.run([&](int ith, int nth) {
        EXPECT_EQ(nth, n);
        hits[size_t(ith)].fetch_add(1);
      });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPoolTest, ParallelSumMatchesSerial) {
  ThreadPool pool(3);
  std::vector<int64_t> v(100003);
  for (size_t i = 0; i < v.size(); ++i) v[i] = int64_t(i) * 7 % 13;
  std::vector<int64_t> partial(3, 0);
  pool.run([&](int ith, int nth) {
    int64_t b, e;
    ThreadPool::split(int64_t(v.size()), ith, nth, 16, &b, &e);
    for (int64_t i = b; i < e; ++i) partial[size_t(ith)] += v[size_t(i)];
  });
  int64_t serial = 0;
  for (auto x : v) serial += x;
  EXPECT_EQ(partial[0] + partial[1] + partial[2], serial);
}

TEST(ThreadPoolTest, SplitCoversRangeAligned) {
  for (int64_t n : {0, 1, 15, 16, 17, 100, 4096}) {
    for (int nth : {1, 2, 3, 8}) {
      int64_t prev_end = 0;
      for (int ith = 0; ith < nth; ++ith) {
        int64_t b, e;
        ThreadPool::split(n, ith, nth, 16, &b, &e);
        EXPECT_EQ(b, prev_end);
        EXPECT_LE(b, e);
        if (e < n) {
          EXPECT_EQ(e % 16, 0);
        }
        prev_end = e;
      }
      EXPECT_EQ(prev_end, n);
    }
  }
}

TEST(ThreadPoolTest, RunSplitGivesEachThreadOneAlignedRangeOrRunsSmallWorkInline) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 7, 8, 9, 64, 100, 5632}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      std::atomic<int> calls{0};
      const auto caller = std::this_thread::get_id();
      std::atomic<bool> only_caller{true};
      pool.run_split(n, 4, 8, [&](int64_t b, int64_t e) {
        calls.fetch_add(1);
        if (std::this_thread::get_id() != caller) only_caller = false;
        EXPECT_LT(b, e);
        EXPECT_EQ(b % 4, 0);
        for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
      if (n == 0) {
        EXPECT_EQ(calls.load(), 0);
      } else if (n < 8 || threads == 1) {  // below min_n: one call, on the caller
        EXPECT_EQ(calls.load(), 1) << n;
        EXPECT_TRUE(only_caller.load()) << n;
      } else {
        EXPECT_LE(calls.load(), threads) << n;  // at most one range per thread
        EXPECT_GE(calls.load(), std::min<int64_t>(threads, (n + 3) / 4)) << n;
      }
    }
  }
}

TEST(ThreadPoolTest, RunRangesCoversEveryIndexOnceInAlignedChunks) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 15, 16, 17, 100, 4096, 5632}) {
      for (int chunks : {1, 4}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> calls{0};
        pool.run_ranges(n, 16, chunks, [&](int64_t b, int64_t e) {
          calls.fetch_add(1);
          EXPECT_LT(b, e);
          EXPECT_EQ(b % 16, 0);
          if (e < n) {
            EXPECT_EQ(e % 16, 0);
          }
          for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
        if (n > 0) {
          // Per share: its chunks (sizes round up), plus at most one short piece where the owner's
          // front meets a thief's back.
          EXPECT_LE(calls.load(), threads * (chunks + 2)) << n;
        } else {
          EXPECT_EQ(calls.load(), 0);
        }
      }
    }
  }
}

// A thread held up inside its first range does not hold up the rest of its share: the other
// threads take it, from the back, and every index is still covered once.
TEST(ThreadPoolTest, RunRangesTakesOverTheShareOfAThreadHeldUp) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    const int64_t n = 4096;
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    std::atomic<int64_t> covered{0};
    std::atomic<bool> gave_up{false};
    pool.run_ranges(n, 16, 8, [&](int64_t b, int64_t e) {
      if (b == 0) {  // the caller's first range: wait until the others have done everything else
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (covered.load() < n - e) {
          if (std::chrono::steady_clock::now() > deadline) {
            gave_up = true;
            break;
          }
          std::this_thread::yield();
        }
      }
      for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
      covered.fetch_add(e - b);
    });
    EXPECT_FALSE(gave_up.load()) << threads << " threads: the held-up thread's share was not taken over";
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "i=" << i;
  }
}

}  // namespace
}  // namespace tidal
