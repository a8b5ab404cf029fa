// Generation backends: where rollouts are generated. The rollout manager talks to one backend;
// a backend may front one in-process Engine (engine_backend.h) or many `tidal serve` instances
// over HTTP (http_backend.h). Same interface, so one config runs on one machine or on many.
//
//   submit({tag, prompt, params})      non-blocking; params.n samples share the prompt
//   poll(max_wait) -> finished results  drives the work (in-process: engine steps) until at least
//                                       one generation finished or max_wait passed
//   publish_weights(path, version)      new weights (a safetensors file on this machine); applied
//                                       between steps: generations in flight continue on the new
//                                       weights (partial rollouts), each token tagged with the
//                                       version that produced it
//
// Thread-safety: one thread calls submit/poll/publish_weights (the rollout thread).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tidal/core/status.h"
#include "tidal/engine/sampling_params.h"

namespace tidal::rollout {

struct GenRequest {
  uint64_t tag = 0;              // caller's id, returned with every result
  std::vector<int32_t> prompt;   // token ids
  SamplingParams params;         // n >= 1 results come back, index 0 .. n-1
};

struct GenResult {
  uint64_t tag = 0;
  int32_t index = 0;                 // sample index within the request
  std::vector<int32_t> tokens;       // completion ids (the stop token included when it stopped on one)
  std::vector<float> logprobs;       // per token: log-prob under the raw model distribution (temperature 1)
  std::vector<uint64_t> versions;    // per token: the weight version that produced it
  std::string finish;                // "stop" | "length" | "abort"
  std::string error;                 // non-empty: the generation failed (the request may be re-submitted)
  std::string backend;               // which instance produced it (metrics, fault-tolerance tests)
};

class GenerationBackend {
 public:
  virtual ~GenerationBackend() = default;
  virtual Status submit(GenRequest request) = 0;
  virtual std::vector<GenResult> poll(double max_wait_s) = 0;
  virtual Status publish_weights(const std::string& path, uint64_t version) = 0;
  // The version new tokens are generated with (after the last publish_weights took effect).
  virtual uint64_t weight_version() const = 0;
  virtual size_t in_flight() const = 0;  // submitted requests not yet fully returned
  // Human-readable description for logs ("in-process engine", "http: 3 instances").
  virtual std::string describe() const = 0;
};

}  // namespace tidal::rollout
