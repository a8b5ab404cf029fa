// EngineBackend: GenerationBackend on one in-process Engine (engine/engine.h). poll() runs engine
// steps on the calling thread; publish_weights() swaps the weights between two steps
// (Engine::update_weights), so generations in flight continue on the new version.
#pragma once

#include <map>
#include <memory>

#include "tidal/engine/engine.h"
#include "tidal/rollout/backend.h"

namespace tidal::rollout {

class EngineBackend final : public GenerationBackend {
 public:
  explicit EngineBackend(Engine& engine) : engine_(engine) {}
  Status submit(GenRequest request) override;
  std::vector<GenResult> poll(double max_wait_s) override;
  Status publish_weights(const std::string& path, uint64_t version) override;
  uint64_t weight_version() const override { return engine_.weight_version(); }
  size_t in_flight() const override { return requests_.size(); }
  std::string describe() const override { return "in-process engine"; }

 private:
  struct Request {
    uint64_t tag = 0;
    int32_t n = 1, done = 0;
    std::map<int32_t, GenResult> samples;  // by index
  };
  void absorb(std::vector<RequestOutput>&& outs, std::vector<GenResult>* done);

  Engine& engine_;
  std::map<RequestId, Request> requests_;
};

}  // namespace tidal::rollout
