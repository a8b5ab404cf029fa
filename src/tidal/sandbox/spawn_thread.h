// SpawnThread: one long-lived thread that performs every fork()/clone() of the sandbox service.
//
// Why: PR_SET_PDEATHSIG fires when the *thread* that forked a child exits, not the process. The
// sandbox init and exec helper processes use it so that nothing outlives the daemon; forking from
// short-lived request threads would kill them when such a thread retires. Forking from this one
// thread ties their lifetime to the daemon (this thread lives as long as the SandboxManager).
//
// run() executes a function on the thread and returns its result; calls are serialised (forks are
// ~0.1 ms, so one thread is not a bottleneck at the rates this service sees).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace tidal::sandbox {

class SpawnThread {
 public:
  SpawnThread() : thread_([this] { loop(); }) {}
  ~SpawnThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  SpawnThread(const SpawnThread&) = delete;
  SpawnThread& operator=(const SpawnThread&) = delete;

  template <class F>
  auto run(F fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::packaged_task<R()> task(std::move(fn));
    std::future<R> result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.emplace_back([&task] { task(); });
    }
    cv_.notify_one();
    return result.get();
  }

 private:
  void loop() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return done_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool done_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace tidal::sandbox
