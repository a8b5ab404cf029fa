#include "tidal/rollout/rollout_manager.h"

#include <chrono>
#include <functional>

#include "tidal/rollout/seed.h"

namespace tidal::rollout {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }


// Request tags: group << 24 | (turn & 0xff) << 16 | sample, sample = 0xffff for a group's first
// turn (one request, n samples). A result whose tag is not what its trajectory waits for is a
// duplicate (a backend re-issued a request) and is dropped.
constexpr uint64_t kFirstTurn = 0xFFFF;
uint64_t make_tag(uint64_t group, int32_t turn, uint64_t sample) {
  return (group << 24) | (uint64_t(turn & 0xff) << 16) | sample;
}
constexpr uint64_t kEngineSampleStride = 0x9e3779b97f4a7c15ull;  // Engine: sample i's seed = seed + i * stride

}  // namespace

struct RolloutManager::Pending {
  Trajectory traj;
  std::unique_ptr<Environment> env;
  int32_t retries = 0;
  uint64_t turn_seed = 0;  // the seed of the current turn (re-submissions reuse it)
  uint64_t awaiting = ~0ull;  // the tag of the generation this trajectory waits for (~0: none)
};

// A small pool for blocking environment steps; finished steps are queued for the rollout thread.
class RolloutManager::Workers {
 public:
  explicit Workers(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> l(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  struct Done {
    uint64_t key;
    Expected<EnvStep> step;
    double seconds;
  };
  void finished(Done d) {
    std::lock_guard<std::mutex> l(mu_);
    done_.push_back(std::move(d));
  }
  std::vector<Done> take_done() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<Done> out(std::make_move_iterator(done_.begin()), std::make_move_iterator(done_.end()));
    done_.clear();
    return out;
  }
  size_t busy() const {
    std::lock_guard<std::mutex> l(mu_);
    return jobs_.size() + running_ + done_.size();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !jobs_.empty(); });
        if (stop_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
        ++running_;
      }
      job();
      std::lock_guard<std::mutex> l(mu_);
      --running_;
    }
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::deque<Done> done_;
  size_t running_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

RolloutManager::RolloutManager(const Task& task, GenerationBackend& backend, const Tokenizer& tokenizer,
                               RolloutConfig config)
    : task_(task), backend_(backend), tokenizer_(tokenizer), config_(config) {
  next_group_ = config_.first_group;
}

RolloutManager::~RolloutManager() { stop(); }

void RolloutManager::start(uint64_t trainer_version) {
  {
    std::lock_guard<std::mutex> l(mu_);
    start_version_ = published_version_ = trainer_version;
  }
  workers_ = std::make_unique<Workers>(std::max(1, config_.env_workers));
  thread_ = std::thread([this] { run(); });
}

void RolloutManager::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  workers_.reset();
}

void RolloutManager::publish(const std::string& path, uint64_t version) {
  {
    std::lock_guard<std::mutex> l(mu_);
    to_publish_ = {path, version};
  }
  cv_.notify_all();
}

RolloutStats RolloutManager::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void RolloutManager::fail(const Status& status) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (failure_.is_ok()) failure_ = status;
  }
  cv_.notify_all();
}

Expected<std::vector<Group>> RolloutManager::take(size_t n, uint64_t trainer_version) {
  std::unique_lock<std::mutex> l(mu_);
  // The groups of this train step: the next n ids in admission order.
  const uint64_t first = config_.first_group + stats_.groups_taken + stats_.groups_dropped_stale;
  cv_.wait(l, [&] {
    if (stopping_ || !failure_.is_ok()) return true;
    for (uint64_t g = first; g < first + n; ++g)
      if (!buffer_.count(g)) return false;
    return true;
  });
  if (!failure_.is_ok()) return failure_;
  if (stopping_) return Status(StatusCode::kInternal, "rollouts: stopped");
  std::vector<Group> out;
  for (uint64_t g = first; g < first + n; ++g) {
    auto node = buffer_.extract(g);
    Group& grp = node.mapped();
    if (grp.min_version() + uint64_t(config_.max_policy_lag) < trainer_version) {
      ++stats_.groups_dropped_stale;  // never expected: admission keeps the bound
      continue;
    }
    ++stats_.groups_taken;
    out.push_back(std::move(grp));
  }
  l.unlock();
  cv_.notify_all();  // the rollout thread may admit more
  return out;
}

void RolloutManager::admit_groups() {
  uint64_t allowed;
  {
    std::lock_guard<std::mutex> l(mu_);
    allowed = (published_version_ - start_version_ + 1 + uint64_t(config_.max_policy_lag)) *
              uint64_t(config_.groups_per_step);
  }
  if (config_.max_groups) allowed = std::min(allowed, config_.max_groups);
  while (admitted_ < allowed) {
    const uint64_t g = next_group_++;
    ++admitted_;
    Group& grp = forming_[g];
    grp.id = g;
    grp.instance = config_.sequential_instances ? g : mix64(config_.seed * 0x2545f4914f6cdd1dull + g);
    std::vector<int32_t> prompt;
    for (int32_t i = 0; i < config_.group_size; ++i) {
      auto env = task_.make(grp.instance, config_.split);
      if (!env) return fail(env.status());
      auto p = (*env)->reset();
      if (!p) return fail(p.status());
      if (i == 0) prompt = *p;
      auto pend = std::make_unique<Pending>();
      pend->env = std::move(*env);
      pend->traj.group = g;
      pend->traj.sample = i;
      pend->traj.instance = grp.instance;
      pend->traj.tokens = std::move(*p);
      pend->traj.n_prompt = int32_t(pend->traj.tokens.size());
      pending_[(g << 16) | uint64_t(i)] = std::move(pend);
    }
    GenRequest r;
    r.tag = make_tag(g, 0, kFirstTurn);
    r.prompt = std::move(prompt);
    r.params = task_.turn_params();
    r.params.n = config_.group_size;
    r.params.temperature = config_.temperature;
    const uint64_t seed = mix64(config_.seed ^ mix64(g));
    r.params.seed = seed;
    for (int32_t i = 0; i < config_.group_size; ++i) {
      Pending& p = *pending_[(g << 16) | uint64_t(i)];
      p.turn_seed = seed + uint64_t(i) * kEngineSampleStride;
      p.awaiting = r.tag;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      ++stats_.groups_admitted;
    }
    if (auto st = backend_.submit(std::move(r)); !st.is_ok()) return fail(st);
  }
}

void RolloutManager::submit_turn(uint64_t key) {
  Pending& p = *pending_.at(key);
  GenRequest r;
  r.tag = make_tag(key >> 16, p.traj.turns, key & 0xFFFF);
  p.awaiting = r.tag;
  r.prompt = p.traj.tokens;
  r.params = task_.turn_params();
  r.params.n = 1;
  r.params.temperature = config_.temperature;
  r.params.seed = p.turn_seed;
  if (auto st = backend_.submit(std::move(r)); !st.is_ok()) fail(st);
}

void RolloutManager::handle(GenResult&& res) {
  const uint64_t group = res.tag >> 24, low = res.tag & 0xFFFF;
  const uint64_t key = (group << 16) | (low == kFirstTurn ? uint64_t(res.index) : low);
  auto it = pending_.find(key);
  // A duplicate (a backend re-issued a request whose first answer was handled) or a stale turn.
  if (it == pending_.end() || it->second->awaiting != res.tag) {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.duplicates_dropped;
    return;
  }
  Pending& p = *it->second;
  p.awaiting = ~0ull;
  if (!res.error.empty()) {
    if (p.retries++ < config_.max_retries) {
      std::lock_guard<std::mutex> l(mu_);
      ++stats_.resubmissions;
    } else {
      p.traj.error = "generation failed " + std::to_string(p.retries) + " times: " + res.error;
      return complete_trajectory(key);
    }
    // Re-submit this sample alone with its own seed (the same tokens as the lost generation).
    return submit_turn(key);
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    stats_.generated_tokens += res.tokens.size();
  }
  for (size_t i = 0; i < res.tokens.size(); ++i) {
    p.traj.tokens.push_back(res.tokens[i]);
    p.traj.loss_mask.push_back(1.0f);
    p.traj.rollout_logprobs.push_back(i < res.logprobs.size() ? res.logprobs[i] : 0.0f);
    p.traj.versions.push_back(i < res.versions.size() ? res.versions[i] : backend_.weight_version());
  }
  ++p.traj.turns;
  const std::string text = tokenizer_.decode(res.tokens, /*skip_special_tokens=*/true);
  if (p.env->blocking()) {
    Environment* env = p.env.get();
    Workers* workers = workers_.get();  // not workers_: stop() resets it while jobs finish
    workers->post([workers, key, env, tokens = std::move(res.tokens), text] {
      const auto t0 = Clock::now();
      auto step = env->step(tokens, text);
      workers->finished({key, std::move(step), seconds_since(t0)});
    });
    return;
  }
  const auto t0 = Clock::now();
  auto step = p.env->step(res.tokens, text);
  finish_turn(key, std::move(step), seconds_since(t0));
}

void RolloutManager::finish_turn(uint64_t key, Expected<EnvStep> step, double seconds) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  Pending& p = *it->second;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.env_steps;
    stats_.env_seconds += seconds;
    if (step)
      for (const auto& [k, v] : step->info) stats_.info[k] += v;
  }
  if (!step) {
    p.traj.error = step.status().message();
    return complete_trajectory(key);
  }
  for (const auto& [k, v] : step->info) p.traj.info[k] += v;
  if (step->done || p.traj.turns >= task_.max_turns()) {
    p.traj.reward = step->done ? step->reward : 0.0;
    p.traj.correct = step->done && step->correct;
    return complete_trajectory(key);
  }
  const uint64_t v = p.traj.versions.empty() ? backend_.weight_version() : p.traj.versions.back();
  for (int32_t t : step->observation) {
    p.traj.tokens.push_back(t);
    p.traj.loss_mask.push_back(0.0f);
    p.traj.rollout_logprobs.push_back(0.0f);
    p.traj.versions.push_back(v);
  }
  p.retries = 0;
  p.turn_seed = mix64(p.turn_seed + uint64_t(p.traj.turns));
  submit_turn(key);
}

void RolloutManager::complete_trajectory(uint64_t key) {
  auto node = pending_.extract(key);
  Trajectory traj = std::move(node.mapped()->traj);
  const uint64_t g = traj.group;
  Group& grp = forming_[g];
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.trajectories;
  if (!traj.error.empty()) ++stats_.trajectories_failed;
  grp.samples.push_back(std::move(traj));
  if (grp.samples.size() == size_t(config_.group_size)) {
    std::sort(grp.samples.begin(), grp.samples.end(),
              [](const Trajectory& a, const Trajectory& b) { return a.sample < b.sample; });
    buffer_[g] = std::move(grp);
    forming_.erase(g);
    ++stats_.groups_completed;
    cv_.notify_all();
  }
}

void RolloutManager::run() {
  for (;;) {
    std::optional<std::pair<std::string, uint64_t>> publish;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_ || !failure_.is_ok()) return;
      publish = std::move(to_publish_);
      to_publish_.reset();
    }
    if (publish) {
      // Between two engine steps: generations in flight continue on the new weights.
      const auto t0 = Clock::now();
      if (auto st = backend_.publish_weights(publish->first, publish->second); !st.is_ok()) return fail(st);
      std::lock_guard<std::mutex> l(mu_);
      published_version_ = publish->second;
      stats_.weight_update_seconds += seconds_since(t0);
    }
    admit_groups();
    for (auto& d : workers_->take_done()) finish_turn(d.key, std::move(d.step), d.seconds);
    if (backend_.in_flight() > 0) {
      const auto t0 = Clock::now();
      auto results = backend_.poll(0.05);
      {
        std::lock_guard<std::mutex> l(mu_);
        stats_.generate_seconds += seconds_since(t0);
      }
      for (auto& r : results) handle(std::move(r));
    } else {
      // Nothing to generate: wait for new weights (admission), environment steps, or stop.
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::milliseconds(workers_->busy() ? 2 : 50),
                   [&] { return stopping_ || to_publish_.has_value(); });
    }
  }
}

}  // namespace tidal::rollout
