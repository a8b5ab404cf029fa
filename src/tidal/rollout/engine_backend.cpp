#include "tidal/rollout/engine_backend.h"

#include <chrono>

namespace tidal::rollout {

Status EngineBackend::submit(GenRequest request) {
  SamplingParams p = request.params;
  p.detokenize = !p.stop.empty();  // environments decode what they need; stop strings need text
  p.logprobs = 0;
  auto id = engine_.add_request(std::move(request.prompt), p);
  if (!id) return id.status();
  Request& r = requests_[*id];
  r.tag = request.tag;
  r.n = p.n;
  return Status::ok();
}

void EngineBackend::absorb(std::vector<RequestOutput>&& outs, std::vector<GenResult>* done) {
  for (RequestOutput& o : outs) {
    auto it = requests_.find(o.id);
    if (it == requests_.end()) continue;
    Request& r = it->second;
    GenResult& g = r.samples[o.index];
    g.tag = r.tag;
    g.index = o.index;
    g.backend = "engine";
    for (size_t i = 0; i < o.token_ids.size(); ++i) {
      g.tokens.push_back(o.token_ids[i]);
      g.logprobs.push_back(i < o.logprobs.size() ? o.logprobs[i].logprob : 0.0f);
      g.versions.push_back(o.weight_version);
    }
    if (!o.finished()) continue;
    switch (o.finish) {
      case FinishReason::kStop: g.finish = "stop"; break;
      case FinishReason::kLength: g.finish = "length"; break;
      default: g.finish = "abort"; g.error = "aborted"; break;
    }
    done->push_back(std::move(g));
    r.samples.erase(o.index);
    if (++r.done == r.n) requests_.erase(it);
  }
}

std::vector<GenResult> EngineBackend::poll(double max_wait_s) {
  std::vector<GenResult> done;
  absorb(engine_.take_pending_outputs(), &done);
  const auto t0 = std::chrono::steady_clock::now();
  while (done.empty() && engine_.has_unfinished()) {
    absorb(engine_.step(), &done);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= max_wait_s) break;
  }
  return done;
}

Status EngineBackend::publish_weights(const std::string& path, uint64_t version) {
  return engine_.update_weights(path, version);
}

}  // namespace tidal::rollout
