#include "tidal/core/thread_pool.h"

#include <algorithm>

#if defined(__linux__)
#include <pthread.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define TIDAL_CPU_RELAX() _mm_pause()
#else
#define TIDAL_CPU_RELAX() ((void)0)
#endif

namespace tidal {

namespace {
constexpr int kSpinIterations = 1 << 14;  // ~50-100 us of spinning before sleeping
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = int(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  shares_ = std::make_unique<Share[]>(size_t(n_threads_));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  // NOTE: release on the generation bump publishes job_ and pending_ to workers, which acquire it.
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  fn(0, n_threads_);
  int spins = 0;
  while (pending_.load(std::memory_order_acquire) != 0) {
    if (++spins < kSpinIterations) {
      TIDAL_CPU_RELAX();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
}

void ThreadPool::worker(int ith) {
#if defined(__linux__)
  // Named so CPU accounting can tell kernel workers from other threads (server/cpu_accounting.h).
  pthread_setname_np(pthread_self(), "tidal-pool");
#endif
  uint64_t seen = 0;
  for (;;) {
    uint64_t g = generation_.load(std::memory_order_acquire);
    int spins = 0;
    while (g == seen) {
      if (++spins < kSpinIterations) {
        TIDAL_CPU_RELAX();
      } else {
        generation_.wait(g, std::memory_order_acquire);
      }
      g = generation_.load(std::memory_order_acquire);
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    (*job_)(ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

namespace {
constexpr uint64_t pack(int64_t front, int64_t back) { return uint64_t(front) | uint64_t(back) << 32; }
constexpr int64_t front_of(uint64_t w) { return int64_t(w & 0xffffffffu); }
constexpr int64_t back_of(uint64_t w) { return int64_t(w >> 32); }
}  // namespace

void ThreadPool::run_ranges(int64_t n, int64_t align, int chunks_per_thread,
                            const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1) {
    fn(0, n);
    return;
  }
  if (n > int64_t(0xffffffffu)) {  // beyond the 32-bit halves of a share's word: one range per thread
    run_split(n, align, 0, fn);
    return;
  }
  const int64_t pieces = int64_t(n_threads_) * std::max(chunks_per_thread, 1);
  const int64_t chunk = std::max<int64_t>((n + pieces - 1) / pieces + align - 1, align) / align * align;
  for (int t = 0; t < n_threads_; ++t) {
    int64_t b, e;
    split(n, t, n_threads_, align, &b, &e);
    shares_[size_t(t)].word.store(pack(b, e), std::memory_order_relaxed);
  }
  run([&](int ith, int nth) {
    // Own share from the front, in chunks: one sequential stream per thread.
    std::atomic<uint64_t>& own = shares_[size_t(ith)].word;
    uint64_t w = own.load(std::memory_order_acquire);
    for (;;) {
      const int64_t f = front_of(w), bk = back_of(w);
      if (f >= bk) break;
      const int64_t nf = std::min(bk, f + chunk);
      if (own.compare_exchange_weak(w, pack(nf, bk), std::memory_order_acq_rel)) {
        fn(f, nf);
        w = own.load(std::memory_order_acquire);
      }
    }
    // Then the others' unclaimed ends, from the back.
    for (int d = 1; d < nth; ++d) {
      std::atomic<uint64_t>& other = shares_[size_t((ith + d) % nth)].word;
      uint64_t v = other.load(std::memory_order_acquire);
      for (;;) {
        const int64_t f = front_of(v), bk = back_of(v);
        if (f >= bk) break;
        const int64_t nb = std::max(f, (bk - chunk) / align * align);
        if (other.compare_exchange_weak(v, pack(f, nb), std::memory_order_acq_rel)) {
          fn(nb, bk);
          v = other.load(std::memory_order_acquire);
        }
      }
    }
  });
}

void ThreadPool::run_split(int64_t n, int64_t align, int64_t min_n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n < min_n || n_threads_ == 1) {
    fn(0, n);
    return;
  }
  run([&](int ith, int nth) {
    int64_t begin, end;
    split(n, ith, nth, align, &begin, &end);
    if (end > begin) fn(begin, end);
  });
}

void ThreadPool::split(int64_t n, int ith, int nth, int64_t align, int64_t* begin, int64_t* end) {
  int64_t blocks = (n + align - 1) / align;
  int64_t per = blocks / nth, extra = blocks % nth;
  int64_t b = ith * per + std::min<int64_t>(ith, extra);
  int64_t e = b + per + (ith < extra ? 1 : 0);
  *begin = std::min(n, b * align);
  *end = std::min(n, e * align);
}

}  // namespace tidal
