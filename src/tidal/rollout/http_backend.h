// HttpBackend: GenerationBackend over any number of `tidal serve` instances (docs/rl-backends.md).
//
//   HttpBackendOptions o;
//   o.urls = {"http://10.0.0.5:8000", "http://10.0.0.6:8000"};
//   auto backend = HttpBackend::create(o);          // probes /health; dead ones are probed later
//   (*backend)->submit({tag, prompt_ids, params});   // non-blocking
//   for (GenResult& r : (*backend)->poll(0.1)) ...  // results of finished requests
//
// Each request is one POST /v1/completions (token-id prompt, n samples, a seed: the backend draws
// one when the caller gave none, so a re-issued request samples the same tokens), asking for the
// completion's token ids, raw-distribution log-probabilities and per-token weight versions. The
// results equal an in-process EngineBackend's on the same model and seed (the engine is batch
// invariant): same tokens (the stop token included), same log-probabilities.
//
// Dispatch: to the live instance with the fewest requests assigned (queued + running); each
// instance has `workers_per_instance` threads with one blocking HttpClient each, so that many
// requests are in flight per instance and the server batches them continuously.
//
// Faults: a connection error or a 5xx marks the instance dead; its queued and in-flight requests
// go to the other live instances (same body, same seed), so each (tag, index) comes back exactly
// once. With no live instance, requests wait up to `retry_timeout_s` and then come back with
// `error` set. A prober thread sends GET /health to dead instances every `probe_interval_s`; one
// that answers gets the latest published weights (POST /admin/update_weights) before it is used
// again.
//
// Weights: publish_weights() posts /admin/update_weights to every live instance with in_flight
// "continue" (generations in flight go on with the new weights between two engine steps: partial
// rollouts, each token tagged with its version); a server that does not know "continue" gets
// "wait" (in-flight requests finish on the old weights first). The path must be readable by every
// instance (same machine or a shared filesystem).
//
// Thread-safety: like every GenerationBackend, one thread calls submit/poll/publish_weights; the
// inspection methods (instances(), reissued()) may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tidal/rollout/backend.h"

namespace tidal::rollout {

struct HttpBackendOptions {
  std::vector<std::string> urls;         // "http://host:port" of each `tidal serve` (host: name or IP)
  std::string api_key;                   // sent as "Authorization: Bearer KEY" (empty: none)
  int workers_per_instance = 32;         // concurrent requests per instance
  double retry_timeout_s = 30;           // a request that finds no live instance fails after this long
  double probe_interval_s = 0.5;         // how often dead instances are probed (GET /health)
  int max_attempts = 4;                  // instances a request may fail on before it fails itself
  std::string weight_update_policy = "continue";  // in_flight of /admin/update_weights ("continue" | "wait")
};

class HttpBackend final : public GenerationBackend {
 public:
  // Fails only on a malformed option (URL, counts); unreachable instances start dead.
  static Expected<std::unique_ptr<HttpBackend>> create(HttpBackendOptions options);
  ~HttpBackend() override;  // waits for the HTTP requests in flight to end (no new ones start)

  Status submit(GenRequest request) override;
  std::vector<GenResult> poll(double max_wait_s) override;
  // Posts the weights to every live instance; a dead one gets them when it is re-admitted. Fails
  // when an instance refuses them (e.g. the path does not exist there).
  Status publish_weights(const std::string& path, uint64_t version) override;
  // The lowest version among live instances (the latest published one when none is live).
  uint64_t weight_version() const override;
  size_t in_flight() const override;
  std::string describe() const override;

  struct InstanceInfo {
    std::string url;
    bool live = false;
    uint64_t weight_version = 0;
    size_t assigned = 0;        // queued + running now
    uint64_t completed = 0;     // requests answered
    uint64_t failures = 0;      // times it was marked dead
  };
  std::vector<InstanceInfo> instances() const;
  // Requests moved off a failed instance to another one (queued or in flight when it failed).
  uint64_t reissued() const;

 private:
  struct Job;
  struct Instance;
  using Clock = std::chrono::steady_clock;

  explicit HttpBackend(HttpBackendOptions options);
  void worker(size_t i);
  void prober();
  // The caller holds mu_ for the *_locked helpers.
  void dispatch_locked(std::shared_ptr<Job> job);
  void mark_dead_locked(size_t i, const std::string& why);
  void fail_job_locked(const Job& job, const std::string& why);
  void expire_orphans_locked();
  bool readmit(size_t i);  // probes a dead instance; true when it is live again

  HttpBackendOptions options_;
  std::vector<std::unique_ptr<Instance>> instances_;
  mutable std::mutex mu_;
  std::condition_variable done_cv_;   // poll()
  std::condition_variable probe_cv_;  // prober (stop)
  std::deque<std::shared_ptr<Job>> orphans_;  // waiting for a live instance
  std::vector<GenResult> done_;
  size_t jobs_pending_ = 0;   // submitted, results not produced yet (queued, running, orphaned)
  size_t jobs_ready_ = 0;     // results produced, sitting in done_ until poll()
  uint64_t reissued_ = 0;
  std::optional<std::pair<std::string, uint64_t>> latest_weights_;  // the last publish_weights
  std::string policy_;        // in_flight policy in use (falls back to "wait")
  std::mt19937_64 seed_rng_;  // seeds for requests without one
  bool stopping_ = false;
  std::thread prober_;
};

}  // namespace tidal::rollout
