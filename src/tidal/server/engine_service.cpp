#include "tidal/server/engine_service.h"

#include <pthread.h>

#include "tidal/server/cpu_accounting.h"

namespace tidal::server {

bool RequestStream::next(std::vector<RequestOutput>* out, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, wait, [&] { return !queue_.empty() || n_left_ == 0; });
  while (!queue_.empty()) {
    out->push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return n_left_ > 0 || !out->empty();
}

void RequestStream::push(RequestOutput o) {
  std::function<void()> listener;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (o.finished()) --n_left_;
    queue_.push_back(std::move(o));
    listener = listener_;
  }
  cv_.notify_all();
  if (listener) listener();
}

bool RequestStream::done() {
  std::lock_guard<std::mutex> lock(mu_);
  return n_left_ == 0 && queue_.empty();
}

void RequestStream::set_listener(std::function<void()> fn) {
  bool now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    listener_ = fn;
    now = !queue_.empty() || n_left_ == 0;
  }
  if (now && fn) fn();
}

EngineService::EngineService(std::unique_ptr<Engine> engine, OutputObserver observer)
    : engine_(std::move(engine)), observer_(std::move(observer)) {
  stats_ = engine_->stats();
  thread_ = std::thread([this] {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), "tidal-engine");
#endif
    loop();
  });
}

EngineService::~EngineService() { stop(); }

void EngineService::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Expected<std::shared_ptr<RequestStream>> EngineService::submit(std::vector<int32_t> prompt, SamplingParams params,
                                                               int32_t priority) {
  std::future<Expected<std::shared_ptr<RequestStream>>> f;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status(StatusCode::kResourceExhausted, "server is shutting down");
    submissions_.push_back({std::move(prompt), std::move(params), priority, {}});
    f = submissions_.back().result.get_future();
  }
  cv_.notify_all();
  return f.get();
}

void EngineService::abort(RequestId id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborts_.push_back(id);
  }
  cv_.notify_all();
}

Status EngineService::run_on_engine(std::function<Status(Engine&)> fn) {
  std::future<Status> f;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Status(StatusCode::kResourceExhausted, "server is shutting down");
    tasks_.push_back({std::move(fn), {}});
    f = tasks_.back().result.get_future();
  }
  cv_.notify_all();
  return f.get();
}

Status EngineService::pause(PauseMode mode) {
  if (mode == PauseMode::kKeep) {
    pause_state_ = kFrozen;
    return run_on_engine([](Engine&) { return Status::ok(); });  // returns once the current step ended
  }
  pause_state_ = kDraining;
  cv_.notify_all();
  if (mode == PauseMode::kAbort) {
    return run_on_engine([this](Engine& e) {
      for (const auto& [id, stream] : streams_) e.abort(id);
      return Status::ok();
    });
  }
  // kWait: running requests keep stepping until none is left.
  while (true) {
    bool idle = false;
    Status st = run_on_engine([&](Engine& e) {
      idle = !e.has_unfinished();
      return Status::ok();
    });
    if (!st.is_ok()) return st;
    if (idle) return Status::ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void EngineService::resume() {
  pause_state_ = kRunning;
  cv_.notify_all();
}

ServiceStats EngineService::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {stats_, paused(), weight_version_.load(), step_cpu_seconds_.load()};
}

void EngineService::deliver(std::vector<RequestOutput> outs) {
  for (RequestOutput& o : outs) {
    if (observer_) observer_(o);
    auto it = streams_.find(o.id);
    if (it != streams_.end()) it->second->push(std::move(o));
  }
}

void EngineService::loop() {
  std::vector<Submission> subs;
  std::vector<RequestId> aborts;
  std::vector<Task> tasks;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        const int ps = pause_state_.load();
        return stopping_ || (!submissions_.empty() && ps == kRunning) || !aborts_.empty() || !tasks_.empty() ||
               (engine_->has_unfinished() && ps != kFrozen);
      });
      if (stopping_) break;
      if (pause_state_.load() == kRunning) {
        // NOTE: while paused, submissions stay queued here (their submit() calls keep waiting),
        // so nothing new enters the engine until resume().
        subs.assign(std::make_move_iterator(submissions_.begin()), std::make_move_iterator(submissions_.end()));
        submissions_.clear();
      }
      aborts.assign(aborts_.begin(), aborts_.end());
      aborts_.clear();
      tasks.assign(std::make_move_iterator(tasks_.begin()), std::make_move_iterator(tasks_.end()));
      tasks_.clear();
    }
    for (Submission& s : subs) {
      auto id = engine_->add_request(std::move(s.prompt), s.params, s.priority);
      if (!id) {
        s.result.set_value(id.status());
        continue;
      }
      auto stream = std::make_shared<RequestStream>(*id, s.params.n);
      stream->set_weight_version(weight_version_.load());
      streams_[*id] = stream;
      s.result.set_value(stream);
    }
    subs.clear();
    for (RequestId id : aborts) engine_->abort(id);
    aborts.clear();
    for (Task& t : tasks) t.result.set_value(t.fn(*engine_));
    tasks.clear();

    deliver(engine_->take_pending_outputs());
    if (pause_state_.load() != kFrozen && engine_->has_unfinished()) {
      const double c0 = this_thread_cpu_seconds();
      std::vector<RequestOutput> outs = engine_->step();
      step_cpu_seconds_.store(step_cpu_seconds_.load() + (this_thread_cpu_seconds() - c0));
      deliver(std::move(outs));
    }
    for (auto it = streams_.begin(); it != streams_.end();) {
      it = engine_->has_request(it->first) ? std::next(it) : streams_.erase(it);
    }
    std::lock_guard<std::mutex> lock(mu_);
    stats_ = engine_->stats();
  }
  // Shutdown: abort everything so waiting handlers return.
  for (auto& [id, stream] : streams_) engine_->abort(id);
  deliver(engine_->take_pending_outputs());
  std::lock_guard<std::mutex> lock(mu_);
  for (Submission& s : submissions_) s.result.set_value(Status(StatusCode::kResourceExhausted, "server is shutting down"));
  for (Task& t : tasks_) t.result.set_value(Status(StatusCode::kResourceExhausted, "server is shutting down"));
}

}  // namespace tidal::server
