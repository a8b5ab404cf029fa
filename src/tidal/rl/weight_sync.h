// Weight sync: trainer parameters -> rollout engines, versioned, without restarting them.
//
// The transfer format is the checkpoint format: one safetensors file with the Hugging Face tensor
// names (the engine's Model::reload_weights reads it like a model folder). The file is written
// into shared memory (/dev/shm, tmpfs) bucket by bucket: each bucket of at most bucket_bytes is
// converted from the trainer's F32 parameters to the target dtype in a staging buffer and
// appended, so the trainer side never holds more than one bucket of converted weights.
//
// Memory bound (documented in docs/trainer.md): during a sync the extra memory is
//   bucket_bytes (staging)  +  S (the new segment, S = parameters x dtype size)
// and the engine maps the segment in place of a copy (zero-copy), so after the swap the old
// weights are released and the segment *is* the engine's weights: the steady state holds one
// copy. The segment is unlinked after the engine (or server) has mapped it; its memory is freed
// when the engine unmaps it at the next update.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "tidal/core/dtype.h"
#include "tidal/core/status.h"
#include "tidal/rl/trainer.h"

namespace tidal {
class Engine;
}

namespace tidal::rl {

struct WeightSyncOptions {
  DType dtype = DType::kBF16;            // F32, F16 or BF16 (the engine computes on what it gets)
  uint64_t bucket_bytes = 64ull << 20;   // staging buffer size (>= 4096)
  std::string dir = "/dev/shm";          // where the segment is written (tmpfs: memory)
};

struct SyncReport {
  uint64_t weight_version = 0;
  uint64_t bytes = 0;            // tensor bytes transferred
  double write_seconds = 0;      // convert + write the segment
  double load_seconds = 0;       // the engine's (or server's) swap
  std::string path;              // the segment (already unlinked)
};

// Writes `params` as one safetensors file at `path` in `dtype`, bucket by bucket (see above).
// Tensor names and shapes are the parameters'; `metadata` goes into the header.
Status write_weights_file(std::span<const ParamView> params, const std::string& path, DType dtype,
                          uint64_t bucket_bytes, const std::map<std::string, std::string>& metadata = {});

// In-process: writes the trainer's weights to a segment and swaps the engine to them
// (Engine::update_weights with `version`). Call between two engine steps; requests in flight
// continue on the new weights (drain or abort them first for a clean version cut).
Expected<SyncReport> sync_engine(const Trainer& trainer, Engine& engine, uint64_t version,
                                 const WeightSyncOptions& options = {});

// To a `tidal serve` on this machine: writes the segment and POSTs /admin/update_weights
// {"path", "weight_version", "in_flight"} (in_flight: "wait" lets running requests finish on the
// old weights, "abort" aborts them). `api_key`: the server's key, if it has one.
Expected<SyncReport> sync_server(const Trainer& trainer, const std::string& host, uint16_t port, uint64_t version,
                                 const WeightSyncOptions& options = {}, const std::string& in_flight = "wait",
                                 const std::string& api_key = "");

}  // namespace tidal::rl
