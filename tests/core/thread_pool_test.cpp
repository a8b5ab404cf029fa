#include "tidal/core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
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

}  // namespace
}  // namespace tidal
