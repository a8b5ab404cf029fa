// Weight sync: trainer parameters -> rollout engines, versioned, without restarting them.
//
// The transfer format is the checkpoint format: one safetensors file with the Hugging Face tensor
// names (the engine's Model::reload_weights reads it like a model folder), written into shared
// memory (/dev/shm, tmpfs). By default (bucket_bytes = 0) the file is mapped and each parameter
// is converted from the trainer's F32 to the engine's dtype straight into the mapping: no staging
// memory. With bucket_bytes > 0 the conversion goes through one staging buffer of that size,
// appended to the file bucket by bucket (for destinations that cannot be mapped).
//
// The engine maps the segment instead of copying it (zero-copy): after the swap the old weights
// are released and the segment *is* the engine's weights.
//
// Memory bound (docs/trainer.md), S = parameters x dtype size:
//   one-shot (sync_engine / sync_server, or reuse_segments = false): during a sync S + bucket_bytes
//     extra (the new segment), steady state one copy (the segment is unlinked once mapped and
//     freed when the engine drops it at the next update);
//   WeightSync with reuse_segments (default): two segments are kept and written alternately, so
//     a sync allocates no memory at all (no page allocation and zeroing: the kernel's part was
//     ~75% of a sync's CPU time) — steady state 2 S, no extra during a sync. WeightSync also keeps
//     both segments mapped from their first write on, so later syncs do not populate ~415k
//     page-table entries (1B model, BF16) again: they only convert (convert.h) into the mapping.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tidal/core/dtype.h"
#include "tidal/core/status.h"
#include "tidal/rl/trainer.h"

namespace tidal {
class Engine;
}

namespace tidal::rl {

struct WeightSyncOptions {
  DType dtype = DType::kBF16;   // F32, F16 or BF16 (the engine computes on what it gets)
  uint64_t bucket_bytes = 0;    // 0: convert into the mapped segment; else staging size (>= 4096)
  std::string dir = "/dev/shm"; // where segments are written (tmpfs: memory)
  bool reuse_segments = true;   // WeightSync only: keep two segments and write them alternately
};

struct SyncReport {
  uint64_t weight_version = 0;
  uint64_t bytes = 0;            // tensor bytes transferred
  double write_seconds = 0;      // convert + write the segment
  double load_seconds = 0;       // the engine's (or server's) swap
  std::string path;              // the segment
};

// Writes `params` as one safetensors file at `path` in `dtype` (see above for bucket_bytes).
// Tensor names and shapes are the parameters'; `metadata` goes into the header.
Status write_weights_file(std::span<const ParamView> params, const std::string& path, DType dtype,
                          uint64_t bucket_bytes, const std::map<std::string, std::string>& metadata = {});

// Pushes a trainer's weights to one engine or one server, sync after sync. Not thread-safe.
class WeightSync {
 public:
  explicit WeightSync(WeightSyncOptions options = {});
  ~WeightSync();  // removes the segments it keeps (a mapping that still uses one stays valid)
  WeightSync(const WeightSync&) = delete;
  WeightSync& operator=(const WeightSync&) = delete;

  // In-process: writes the segment and swaps the engine to it (Engine::update_weights with
  // `version`). Call between two engine steps; requests in flight continue on the new weights
  // (drain or abort them first for a clean version cut). On failure the engine keeps its weights.
  Expected<SyncReport> to_engine(const Trainer& trainer, Engine& engine, uint64_t version);
  // To a `tidal serve` on this machine: writes the segment and POSTs /admin/update_weights
  // {"path", "weight_version", "in_flight"} ("wait": running requests finish on the old weights;
  // "abort": they are aborted). `api_key`: the server's key, if it has one.
  Expected<SyncReport> to_server(const Trainer& trainer, const std::string& host, uint16_t port, uint64_t version,
                                 const std::string& in_flight = "wait", const std::string& api_key = "");

 private:
  Expected<SyncReport> write(const Trainer& trainer, uint64_t version);
  void swapped(bool ok);  // after the target took (or refused) the segment just written

  // A segment file and, once written, its mapping kept across syncs (reuse_segments only).
  struct Segment {
    std::string path;
    uint8_t* map = nullptr;
    size_t size = 0;
    DType dtype = DType::kF32;
    std::vector<std::string> names;              // the parameters' order when mapped
    std::vector<std::vector<int64_t>> shapes;
    std::vector<uint64_t> offsets;               // file offset of each parameter's data
  };
  // Maps an existing segment file when it holds exactly `params` in `dtype`; false otherwise.
  Expected<bool> map_segment(Segment& seg, std::span<const ParamView> params);
  static bool matches(const Segment& seg, std::span<const ParamView> params, DType dtype);
  static void unmap(Segment& seg);

  WeightSyncOptions options_;
  Segment segments_[2];
  int next_ = 0;  // the segment to write: never the one the target maps now
};

// One-shot forms (a fresh segment, unlinked after the swap).
Expected<SyncReport> sync_engine(const Trainer& trainer, Engine& engine, uint64_t version,
                                 WeightSyncOptions options = {});
Expected<SyncReport> sync_server(const Trainer& trainer, const std::string& host, uint16_t port, uint64_t version,
                                 WeightSyncOptions options = {}, const std::string& in_flight = "wait",
                                 const std::string& api_key = "");

}  // namespace tidal::rl
