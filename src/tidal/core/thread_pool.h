// A fixed pool of worker threads for data-parallel kernels: run(fn) calls fn(ith, nth) on nth
// threads (the caller is thread 0) and returns when all are done.
//
// NOTE: decode runs hundreds of small parallel regions per token, so workers spin briefly on an
// atomic generation counter before sleeping (std::atomic::wait); a condition variable per region
// would cost more than the work. Thread-safety: run() must be called from one thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace tidal {

class ThreadPool {
 public:
  // n_threads includes the calling thread; 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }
  void run(const std::function<void(int ith, int nth)>& fn);

  // Split [0, n) into nth contiguous chunks aligned to `align`; chunk ith is [*begin, *end).
  static void split(int64_t n, int ith, int nth, int64_t align, int64_t* begin, int64_t* end);

  // fn(begin, end) over [0, n) in `align`-aligned ranges. Each thread owns a contiguous share
  // (split()) and takes it from the front in chunks of about n / (nth * chunks_per_thread), so it
  // reads one sequential stream; a thread done with its share takes chunks from the back of the
  // others' unclaimed parts. A thread that wakes late or runs slower (a busy core, a shared machine)
  // thus does less instead of holding up the rest. Every index is covered exactly once; which
  // thread runs which range is not fixed, so fn must not depend on it.
  // NOTE: measured on the 1B decode (mxfp4:a8, 2 threads), contiguous shares with stealing beat
  // chunks dealt first come first served from one counter (interleaving the threads' streams) by
  // 2-6% tok/s.
  void run_ranges(int64_t n, int64_t align, int chunks_per_thread, const std::function<void(int64_t, int64_t)>& fn);

  // fn(begin, end) over [0, n) in one contiguous, `align`-aligned range per thread (split()); on
  // the caller alone when n < min_n or the pool has one thread: small work is not worth waking the
  // workers for. For row-wise work whose cost is even across rows.
  void run_split(int64_t n, int64_t align, int64_t min_n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker(int ith);

  // run_ranges' claims: per thread, the unclaimed part [front, back) of its share, packed as
  // front | back << 32 in one word, on its own cache line.
  struct alignas(64) Share {
    std::atomic<uint64_t> word{0};
  };
  std::unique_ptr<Share[]> shares_;

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace tidal
