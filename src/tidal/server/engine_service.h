// EngineService: runs an Engine on its own thread and lets many HTTP handler threads use it.
//
// Handlers submit() a request and read its outputs from a RequestStream; the engine thread
// admits submissions between steps, steps while there is work, and pushes each step's outputs to
// the streams. abort() (e.g. the client disconnected) takes effect before the next step, so the
// request's KV blocks are freed within one engine step. Control operations (pause, weight update,
// cache flush) also run on the engine thread between steps.
//
// Thread-safety: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "tidal/engine/engine.h"

namespace tidal::server {

// The outputs of one request (all its samples), produced by the engine thread.
class RequestStream {
 public:
  RequestStream(RequestId id, int32_t n_samples) : id_(id), n_left_(n_samples) {}
  RequestId id() const { return id_; }
  // Waits up to `wait` for outputs; appends them to *out. Returns false once every sample has
  // finished and everything was handed out.
  bool next(std::vector<RequestOutput>* out, std::chrono::milliseconds wait);
  // True once every sample finished and every output was handed out.
  bool done();
  // Like next() without waiting.
  bool poll(std::vector<RequestOutput>* out) { return next(out, std::chrono::milliseconds(0)); }
  // Event-driven reading: fn() runs after every push (on the engine thread), and once now when
  // outputs are already queued. It must be quick and never block (post the work elsewhere);
  // readers then poll(). Replaces an earlier listener.
  void set_listener(std::function<void()> fn);
  uint64_t weight_version() const { return weight_version_; }

  // Engine thread side.
  void push(RequestOutput o);
  void set_weight_version(uint64_t v) { weight_version_ = v; }

 private:
  RequestId id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;
  std::function<void()> listener_;
  int32_t n_left_;
  std::atomic<uint64_t> weight_version_{0};
};

struct ServiceStats {
  EngineStats engine;
  bool paused = false;
  uint64_t weight_version = 0;
  // CPU seconds of the engine thread inside Engine::step() (thread CPU clock); the kernel pool's
  // workers are not included (see cpu_accounting.h).
  double step_thread_cpu_seconds = 0;
};

class EngineService {
 public:
  // Called on the engine thread for every output (metrics: TTFT, inter-token latency).
  using OutputObserver = std::function<void(const RequestOutput&)>;

  explicit EngineService(std::unique_ptr<Engine> engine, OutputObserver observer = {});
  ~EngineService();  // stop()
  EngineService(const EngineService&) = delete;
  EngineService& operator=(const EngineService&) = delete;

  // Queues a request; fails with the engine's validation error (nothing queued). While paused,
  // requests are accepted and wait.
  Expected<std::shared_ptr<RequestStream>> submit(std::vector<int32_t> prompt, SamplingParams params,
                                                  int32_t priority = 0);
  void abort(RequestId id);
  // Runs fn(engine) on the engine thread between steps and returns its result.
  Status run_on_engine(std::function<Status(Engine&)> fn);

  enum class PauseMode { kAbort, kWait, kKeep };
  // kAbort: abort every in-flight request; kWait: stop admitting, return once in-flight requests
  // finished; kKeep: freeze in-flight requests where they are (resume continues them).
  Status pause(PauseMode mode);
  void resume();
  bool paused() const { return pause_state_.load() != kRunning; }
  uint64_t weight_version() const { return weight_version_.load(); }
  void bump_weight_version() { weight_version_.fetch_add(1); }
  void set_weight_version(uint64_t v) { weight_version_.store(v); }

  ServiceStats stats() const;
  // The engine's immutable parts (tokenizer, config) may be read from any thread.
  const Engine& engine() const { return *engine_; }
  void stop();

 private:
  struct Submission {
    std::vector<int32_t> prompt;
    SamplingParams params;
    int32_t priority;
    std::promise<Expected<std::shared_ptr<RequestStream>>> result;
  };
  struct Task {
    std::function<Status(Engine&)> fn;
    std::promise<Status> result;
  };
  void loop();
  void deliver(std::vector<RequestOutput> outs);  // engine thread

  std::unique_ptr<Engine> engine_;
  OutputObserver observer_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Submission> submissions_;
  std::deque<RequestId> aborts_;
  std::deque<Task> tasks_;
  std::unordered_map<RequestId, std::shared_ptr<RequestStream>> streams_;  // engine thread only
  // kRunning; kDraining: no admission, running requests continue; kFrozen: no admission, no steps.
  enum PauseState { kRunning = 0, kDraining = 1, kFrozen = 2 };
  std::atomic<int> pause_state_{kRunning};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> weight_version_{0};
  EngineStats stats_;  // guarded by mu_, refreshed after each step
  std::atomic<double> step_cpu_seconds_{0};
  std::thread thread_;
};

}  // namespace tidal::server
