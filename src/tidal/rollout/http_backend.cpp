#include "tidal/rollout/http_backend.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "tidal/http/http_client.h"

namespace tidal::rollout {

using json = nlohmann::json;

struct HttpBackend::Job {
  uint64_t tag = 0;
  int32_t n = 1;
  std::string body;          // the /v1/completions request, the same on every attempt
  int attempts = 0;          // instances it failed on
  std::string last_error;
  std::optional<Clock::time_point> orphaned_since;  // when it found no live instance
};

struct HttpBackend::Instance {
  std::string url, host;
  uint16_t port = 0;
  bool live = false;
  uint64_t version = 0;
  std::deque<std::shared_ptr<Job>> queue;
  size_t running = 0;
  uint64_t completed = 0, failures = 0;
  std::condition_variable cv;  // its workers wait here
  std::vector<std::thread> workers;
  size_t load() const { return queue.size() + running; }
};

namespace {

Status bad_option(const std::string& msg) { return Status(StatusCode::kInvalidArgument, msg); }

// "http://host:port[/]" -> numeric host, port.
Status parse_url(const std::string& url, std::string* host, uint16_t* port) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    return bad_option("rollout server URL '" + url + "' must look like http://host:port (https is not supported)");
  }
  std::string rest = url.substr(scheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || rest.find('/') != std::string::npos) {
    return bad_option("rollout server URL '" + url + "' must look like http://host:port");
  }
  std::string h = rest.substr(0, colon);
  const std::string p = rest.substr(colon + 1);
  char* end = nullptr;
  const long v = std::strtol(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || v < 1 || v > 65535) {
    return bad_option("rollout server URL '" + url + "': port '" + p + "' must be in [1, 65535]");
  }
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);  // [::1]
  addrinfo* res = nullptr;
  int rc = 0;
  for (int family : {AF_INET, AF_INET6}) {  // IPv4 first: "localhost" is 127.0.0.1
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(h.c_str(), nullptr, &hints, &res)) == 0 && res) break;
  }
  if (rc != 0 || !res) {
    return bad_option("rollout server URL '" + url + "': cannot resolve host '" + h + "': " + gai_strerror(rc));
  }
  char buf[NI_MAXHOST];
  rc = getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof(buf), nullptr, 0, NI_NUMERICHOST);
  freeaddrinfo(res);
  if (rc != 0) return bad_option("rollout server URL '" + url + "': cannot resolve host '" + h + "'");
  *host = buf;
  *port = uint16_t(v);
  return Status::ok();
}

std::string request_body(const std::vector<int32_t>& prompt, const SamplingParams& p) {
  json j = {{"prompt", prompt},
            {"n", p.n},
            {"max_tokens", p.max_tokens},
            {"temperature", p.temperature},
            {"top_p", p.top_p},
            {"top_k", p.top_k},
            {"min_p", p.min_p},
            {"repetition_penalty", p.repetition_penalty},
            {"presence_penalty", p.presence_penalty},
            {"frequency_penalty", p.frequency_penalty},
            {"seed", *p.seed},
            {"ignore_eos", p.ignore_eos},
            {"stop_token_ids", p.stop_token_ids},
            // What the in-process backend asks of the engine: token ids (text only when stop
            // strings need it), raw log-probabilities, token ids and per-token weight versions.
            {"detokenize", !p.stop.empty()},
            {"return_token_ids", true},
            {"return_logprobs", true}};
  if (!p.stop.empty()) j["stop"] = p.stop;
  return j.dump();
}

// The n results of one /v1/completions response; an error message when it does not parse.
Expected<std::vector<GenResult>> parse_results(const std::string& body, uint64_t tag, int32_t n,
                                               const std::string& url) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("choices") || !j["choices"].is_array()) {
    return Status(StatusCode::kInternal, "malformed completion response from " + url);
  }
  const uint64_t response_version = j.value("weight_version", uint64_t{0});
  std::vector<GenResult> out;
  try {
    for (const json& c : j["choices"]) {
      GenResult g;
      g.tag = tag;
      g.index = c.at("index").get<int32_t>();
      g.backend = url;
      g.tokens = c.at("token_ids").get<std::vector<int32_t>>();
      const json& lp = c.at("logprobs");
      if (lp.is_object()) {
        for (const json& v : lp.at("token_logprobs")) g.logprobs.push_back(v.is_number() ? v.get<float>() : 0.0f);
      }
      g.logprobs.resize(g.tokens.size(), 0.0f);
      if (auto v = c.find("token_weight_versions"); v != c.end() && v->is_array()) {
        g.versions = v->get<std::vector<uint64_t>>();
      }
      g.versions.resize(g.tokens.size(), response_version);  // a server without per-token versions
      g.finish = c.at("finish_reason").is_string() ? c["finish_reason"].get<std::string>() : "abort";
      if (g.finish != "stop" && g.finish != "length") {
        g.finish = "abort";
        g.error = "aborted";
      }
      out.push_back(std::move(g));
    }
  } catch (const json::exception& e) {
    return Status(StatusCode::kInternal, "malformed completion response from " + url + ": " + e.what());
  }
  if (int32_t(out.size()) != n) {
    return Status(StatusCode::kInternal, "completion response from " + url + " has " + std::to_string(out.size()) +
                                             " choices, expected " + std::to_string(n));
  }
  std::sort(out.begin(), out.end(), [](const GenResult& a, const GenResult& b) { return a.index < b.index; });
  return out;
}

// The server's error message, when the body is an OpenAI error object.
std::string error_message(const http::ClientResponse& r) {
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object() && j["error"].contains("message")) {
    return "HTTP " + std::to_string(r.status) + ": " + j["error"]["message"].get<std::string>();
  }
  return "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
}

// The server's current weight version (GET /metrics, tidal_weight_version); nullopt when unknown.
std::optional<uint64_t> fetch_version(http::HttpClient& c) {
  auto r = c.request("GET", "/metrics");
  if (!r || r->status != 200) return std::nullopt;
  const std::string key = "\ntidal_weight_version ";
  const size_t at = r->body.find(key);
  if (at == std::string::npos) return std::nullopt;
  return uint64_t(std::strtod(r->body.c_str() + at + key.size(), nullptr));
}

}  // namespace

Expected<std::unique_ptr<HttpBackend>> HttpBackend::create(HttpBackendOptions options) {
  if (options.urls.empty()) return bad_option("the HTTP rollout backend needs at least one server URL");
  if (options.workers_per_instance < 1) return bad_option("workers_per_instance must be >= 1");
  if (options.max_attempts < 1) return bad_option("max_attempts must be >= 1");
  if (!(options.retry_timeout_s >= 0)) return bad_option("retry_timeout_s must be >= 0");
  if (!(options.probe_interval_s > 0)) return bad_option("probe_interval_s must be > 0");
  if (options.weight_update_policy != "continue" && options.weight_update_policy != "wait") {
    return bad_option("weight_update_policy must be 'continue' or 'wait', got '" + options.weight_update_policy + "'");
  }
  std::vector<std::unique_ptr<Instance>> instances;
  for (const std::string& url : options.urls) {
    auto inst = std::make_unique<Instance>();
    inst->url = url;
    while (!inst->url.empty() && inst->url.back() == '/') inst->url.pop_back();
    TIDAL_RETURN_IF_ERROR(parse_url(url, &inst->host, &inst->port));
    for (const auto& other : instances) {
      if (other->host == inst->host && other->port == inst->port) return bad_option("rollout server URL listed twice: " + url);
    }
    instances.push_back(std::move(inst));
  }
  std::unique_ptr<HttpBackend> b(new HttpBackend(std::move(options)));
  b->instances_ = std::move(instances);
  // First contact: instances that answer /health start live (with their current version).
  for (size_t i = 0; i < b->instances_.size(); ++i) b->readmit(i);
  for (size_t i = 0; i < b->instances_.size(); ++i) {
    for (int w = 0; w < b->options_.workers_per_instance; ++w) b->instances_[i]->workers.emplace_back([p = b.get(), i] { p->worker(i); });
  }
  b->prober_ = std::thread([p = b.get()] { p->prober(); });
  return b;
}

HttpBackend::HttpBackend(HttpBackendOptions options)
    : options_(std::move(options)), policy_(options_.weight_update_policy), seed_rng_(std::random_device{}()) {}

HttpBackend::~HttpBackend() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& inst : instances_) inst->cv.notify_all();
  }
  probe_cv_.notify_all();
  done_cv_.notify_all();
  for (auto& inst : instances_) {
    for (auto& t : inst->workers) t.join();
  }
  if (prober_.joinable()) prober_.join();
}

Status HttpBackend::submit(GenRequest request) {
  if (request.prompt.empty()) return bad_option("prompt is empty");
  SamplingParams p = request.params;
  TIDAL_RETURN_IF_ERROR(p.validate(std::numeric_limits<int64_t>::max()));  // the server checks token ids
  auto job = std::make_shared<Job>();
  job->tag = request.tag;
  job->n = p.n;
  std::lock_guard<std::mutex> lock(mu_);
  // A fixed seed makes a re-issued request sample the same tokens on another instance.
  if (!p.seed) p.seed = seed_rng_();
  job->body = request_body(request.prompt, p);
  ++jobs_pending_;
  dispatch_locked(std::move(job));
  return Status::ok();
}

void HttpBackend::dispatch_locked(std::shared_ptr<Job> job) {
  Instance* best = nullptr;
  for (auto& inst : instances_) {
    if (inst->live && (!best || inst->load() < best->load())) best = inst.get();
  }
  if (!best) {
    if (!job->orphaned_since) job->orphaned_since = Clock::now();
    orphans_.push_back(std::move(job));
    return;
  }
  job->orphaned_since.reset();
  best->queue.push_back(std::move(job));
  best->cv.notify_one();
}

void HttpBackend::fail_job_locked(const Job& job, const std::string& why) {
  for (int32_t k = 0; k < job.n; ++k) {
    GenResult g;
    g.tag = job.tag;
    g.index = k;
    g.finish = "abort";
    g.error = why;
    done_.push_back(std::move(g));
  }
  ++jobs_ready_;
  done_cv_.notify_all();
}

void HttpBackend::mark_dead_locked(size_t i, const std::string& why) {
  Instance& inst = *instances_[i];
  if (!inst.live) return;
  inst.live = false;
  ++inst.failures;
  std::deque<std::shared_ptr<Job>> moved;
  moved.swap(inst.queue);
  for (auto& job : moved) {
    job->last_error = why;
    ++reissued_;
    dispatch_locked(std::move(job));
  }
  probe_cv_.notify_all();
}

void HttpBackend::worker(size_t i) {
  Instance& inst = *instances_[i];
  http::HttpClient client(inst.host, inst.port);
  client.set_api_key(options_.api_key);
  const std::map<std::string, std::string> headers = {{"Content-Type", "application/json"}};
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    inst.cv.wait(lock, [&] { return stopping_ || (inst.live && !inst.queue.empty()); });
    if (stopping_) return;
    std::shared_ptr<Job> job = std::move(inst.queue.front());
    inst.queue.pop_front();
    ++inst.running;
    lock.unlock();

    auto r = client.request("POST", "/v1/completions", job->body, headers);
    Expected<std::vector<GenResult>> results = Status(StatusCode::kInternal, "");
    if (r && r->status == 200) results = parse_results(r->body, job->tag, job->n, inst.url);
    else if (!r || r->status >= 500) client.close();
    const bool overloaded = r && r->status == 429;
    if (overloaded) std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Retry-After: soon

    lock.lock();
    --inst.running;
    if (r && r->status == 200 && results) {
      ++inst.completed;
      for (GenResult& g : *results) done_.push_back(std::move(g));
      ++jobs_ready_;
      --jobs_pending_;
      done_cv_.notify_all();
    } else if (overloaded) {
      dispatch_locked(std::move(job));  // no attempt used: the instance is fine, only busy
    } else if (!r || r->status >= 500) {
      // The instance failed (refused, reset, 5xx): it is dead until a probe says otherwise; this
      // request and the ones queued there go to the live instances.
      const std::string why = inst.url + ": " + (r ? error_message(*r) : r.status().message());
      mark_dead_locked(i, why);
      job->last_error = why;
      if (++job->attempts >= options_.max_attempts) {
        --jobs_pending_;
        fail_job_locked(*job, "failed on " + std::to_string(job->attempts) + " instances; last: " + why);
      } else {
        ++reissued_;
        dispatch_locked(std::move(job));
      }
    } else {
      // A 4xx (the request itself is wrong) or an answer that does not parse: retrying elsewhere
      // would fail the same way.
      --jobs_pending_;
      fail_job_locked(*job, r->status == 200 ? results.status().message() : inst.url + ": " + error_message(*r));
    }
  }
}

bool HttpBackend::readmit(size_t i) {
  std::string host;
  uint16_t port;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (instances_[i]->live || stopping_) return instances_[i]->live;
    host = instances_[i]->host;
    port = instances_[i]->port;
  }
  http::HttpClient c(host, port);
  c.set_api_key(options_.api_key);
  auto h = c.request("GET", "/health");
  if (!h || h->status != 200) return false;
  // Bring it to the latest published weights before it takes requests. A publish that happens
  // meanwhile skips it (not live yet): loop until what it has is the latest.
  std::optional<uint64_t> version = fetch_version(c);
  while (true) {
    std::optional<std::pair<std::string, uint64_t>> want;
    std::string policy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      if (latest_weights_ && version != latest_weights_->second) want = latest_weights_;
      policy = policy_;
      if (!want) {
        Instance& inst = *instances_[i];
        inst.live = true;
        inst.version = version.value_or(0);
        std::deque<std::shared_ptr<Job>> waiting;
        waiting.swap(orphans_);
        for (auto& job : waiting) dispatch_locked(std::move(job));
        return true;
      }
    }
    json body = {{"path", want->first}, {"weight_version", want->second}, {"in_flight", policy}};
    auto r = c.request("POST", "/admin/update_weights", body.dump());
    if (!r || r->status != 200) return false;  // probed again later
    version = want->second;
  }
}

void HttpBackend::expire_orphans_locked() {
  const auto now = Clock::now();
  const auto limit = std::chrono::duration<double>(options_.retry_timeout_s);
  for (auto it = orphans_.begin(); it != orphans_.end();) {
    const Job& job = **it;
    if (job.orphaned_since && now - *job.orphaned_since >= limit) {
      --jobs_pending_;
      fail_job_locked(job, "no live rollout server for " + std::to_string(options_.retry_timeout_s) + " s" +
                               (job.last_error.empty() ? "" : "; last error: " + job.last_error));
      it = orphans_.erase(it);
    } else {
      ++it;
    }
  }
}

void HttpBackend::prober() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto interval = std::chrono::duration<double>(options_.probe_interval_s);
  Clock::time_point last_probe{};
  while (!stopping_) {
    // Orphans expire on time even when the probe interval is long.
    auto wait = std::chrono::duration_cast<Clock::duration>(interval);
    if (!orphans_.empty()) wait = std::min(wait, std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(50)));
    probe_cv_.wait_for(lock, wait);
    if (stopping_) return;
    expire_orphans_locked();
    std::vector<size_t> dead;
    for (size_t i = 0; i < instances_.size(); ++i) {
      if (!instances_[i]->live) dead.push_back(i);
    }
    if (dead.empty()) continue;
    if (Clock::now() - last_probe < interval) continue;
    last_probe = Clock::now();
    lock.unlock();
    for (size_t i : dead) readmit(i);
    lock.lock();
  }
}

std::vector<GenResult> HttpBackend::poll(double max_wait_s) {
  std::unique_lock<std::mutex> lock(mu_);
  if (done_.empty() && jobs_pending_ > 0) {
    done_cv_.wait_for(lock, std::chrono::duration<double>(std::max(0.0, max_wait_s)),
                      [&] { return !done_.empty() || jobs_pending_ == 0 || stopping_; });
  }
  std::vector<GenResult> out;
  out.swap(done_);
  jobs_ready_ = 0;
  return out;
}

Status HttpBackend::publish_weights(const std::string& path, uint64_t version) {
  std::vector<size_t> live;
  std::string policy;
  std::optional<std::pair<std::string, uint64_t>> previous;
  {
    // Recorded first: an instance re-admitted from now on gets these weights from the prober.
    std::lock_guard<std::mutex> lock(mu_);
    previous = latest_weights_;
    latest_weights_ = {path, version};
    for (size_t i = 0; i < instances_.size(); ++i) {
      if (instances_[i]->live) live.push_back(i);
    }
    policy = policy_;
  }
  std::vector<Status> errors(live.size());
  std::vector<std::thread> threads;
  for (size_t k = 0; k < live.size(); ++k) {
    threads.emplace_back([&, k] {
      const size_t i = live[k];
      Instance& inst = *instances_[i];
      http::HttpClient c(inst.host, inst.port);
      c.set_api_key(options_.api_key);
      std::string pol = policy;
      for (int attempt = 0; attempt < 2; ++attempt) {
        json body = {{"path", path}, {"weight_version", version}, {"in_flight", pol}};
        auto r = c.request("POST", "/admin/update_weights", body.dump());
        std::lock_guard<std::mutex> lock(mu_);
        if (r && r->status == 200) {
          inst.version = version;
          if (pol != policy_) policy_ = pol;
          return;
        }
        if (!r || r->status >= 500) {  // it gets the weights when it is re-admitted
          mark_dead_locked(i, inst.url + ": " + (r ? error_message(*r) : r.status().message()));
          return;
        }
        // A server without the "continue" policy: in-flight requests finish on the old weights.
        if (r->status == 400 && pol == "continue" && r->body.find("\"in_flight\"") != std::string::npos) {
          pol = "wait";
          continue;
        }
        errors[k] = Status(StatusCode::kInvalidArgument, "publishing weights '" + path + "' to " + inst.url +
                                                             " failed: " + error_message(*r));
        return;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : errors) {
    if (s.is_ok()) continue;
    // Refused (e.g. the path does not exist there): re-admitted instances keep getting the
    // previous weights.
    std::lock_guard<std::mutex> lock(mu_);
    latest_weights_ = previous;
    return s;
  }
  return Status::ok();
}

uint64_t HttpBackend::weight_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<uint64_t> v;
  for (const auto& inst : instances_) {
    if (inst->live) v = v ? std::min(*v, inst->version) : inst->version;
  }
  if (v) return *v;
  return latest_weights_ ? latest_weights_->second : 0;
}

size_t HttpBackend::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_pending_ + jobs_ready_;
}

std::string HttpBackend::describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t live = 0;
  for (const auto& inst : instances_) live += inst->live ? 1 : 0;
  return "http: " + std::to_string(instances_.size()) + " instance" + (instances_.size() == 1 ? "" : "s") + " (" +
         std::to_string(live) + " live)";
}

std::vector<HttpBackend::InstanceInfo> HttpBackend::instances() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<InstanceInfo> out;
  for (const auto& inst : instances_) {
    out.push_back({inst->url, inst->live, inst->version, inst->load(), inst->completed, inst->failures});
  }
  return out;
}

uint64_t HttpBackend::reissued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reissued_;
}

}  // namespace tidal::rollout
