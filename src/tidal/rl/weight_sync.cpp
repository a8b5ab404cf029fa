#include "tidal/rl/weight_sync.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "tidal/engine/engine.h"
#include "tidal/http/http_client.h"
#include "tidal/model/safetensors.h"
#include "tidal/rl/convert.h"

namespace tidal::rl {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string segment_path(const WeightSyncOptions& o) {
  static std::atomic<uint64_t> counter{0};
  return o.dir + "/tidal-weights-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".safetensors";
}

}  // namespace

Status write_weights_file(std::span<const ParamView> params, const std::string& path, DType dtype,
                          uint64_t bucket_bytes, const std::map<std::string, std::string>& metadata) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) {
    return invalid_argument(path + ": weights can be written as F32, F16 or BF16, not " + dtype_name(dtype));
  }
  if (bucket_bytes != 0 && bucket_bytes < 4096) {
    return invalid_argument(path + ": bucket size must be 0 (convert in place) or at least 4096 bytes");
  }
  std::vector<TensorSpec> specs;
  for (const ParamView& p : params) specs.push_back({p.name, dtype, p.shape});
  TIDAL_ASSIGN_OR_RETURN(SafetensorsWriter w, SafetensorsWriter::create(path, std::move(specs), metadata));
  const size_t esz = dtype_size(dtype);
  if (bucket_bytes == 0) {
    // Convert straight into the mapped file: no staging memory at all.
    TIDAL_ASSIGN_OR_RETURN(uint8_t * data, w.map_data());
    for (size_t i = 0; i < params.size(); ++i) convert_f32(params[i].data, params[i].numel, dtype, data + w.data_offset(i));
    return w.finish();
  }
  // NOTE: one staging buffer for the whole file: a bucket is filled with converted values of
  // consecutive tensors (large tensors span several buckets) and appended when full.
  const int64_t bucket_elems = int64_t(bucket_bytes / esz);
  std::vector<uint8_t> bucket(size_t(bucket_elems) * esz);
  int64_t fill = 0;
  for (const ParamView& p : params) {
    for (int64_t done = 0; done < p.numel;) {
      const int64_t n = std::min(p.numel - done, bucket_elems - fill);
      convert_f32(p.data + done, n, dtype, bucket.data() + size_t(fill) * esz);
      fill += n;
      done += n;
      if (fill == bucket_elems) {
        TIDAL_RETURN_IF_ERROR(w.append(bucket));
        fill = 0;
      }
    }
  }
  if (fill > 0) TIDAL_RETURN_IF_ERROR(w.append(std::span<const uint8_t>(bucket.data(), size_t(fill) * esz)));
  return w.finish();
}

WeightSync::WeightSync(WeightSyncOptions options) : options_(std::move(options)) {
  segments_[0].path = segment_path(options_);
  segments_[1].path = options_.reuse_segments ? segment_path(options_) : segments_[0].path;
}

WeightSync::~WeightSync() {
  for (Segment& s : segments_) {
    unmap(s);
    std::remove(s.path.c_str());
  }
}

void WeightSync::unmap(Segment& seg) {
  if (seg.map) ::munmap(seg.map, seg.size);
  seg.map = nullptr;
  seg.size = 0;
  seg.names.clear();
  seg.shapes.clear();
  seg.offsets.clear();
}

bool WeightSync::matches(const Segment& seg, std::span<const ParamView> params, DType dtype) {
  if (!seg.map || seg.dtype != dtype || seg.names.size() != params.size()) return false;
  for (size_t i = 0; i < params.size(); ++i) {
    if (seg.names[i] != params[i].name || seg.shapes[i] != params[i].shape) return false;
  }
  return true;
}

Expected<bool> WeightSync::map_segment(Segment& seg, std::span<const ParamView> params) {
  unmap(seg);
  std::vector<uint64_t> offsets;
  uint64_t size = 0;
  {
    auto f = SafetensorsFile::open(seg.path);
    if (!f) return false;
    if (f->tensors().size() != params.size()) return false;
    for (const ParamView& p : params) {
      const TensorInfo* t = f->find(p.name);
      if (!t || t->dtype != options_.dtype || t->shape != p.shape) return false;
      offsets.push_back(t->offset);
      size = std::max(size, t->offset + t->nbytes);
    }
  }
  if (size == 0) return false;
  const int fd = ::open(seg.path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return io_error(seg.path + ": cannot open for rewriting: " + std::strerror(errno));
  // NOTE: populated once here; the mapping stays until the segment's layout changes or the
  // WeightSync goes, so later syncs only write (no page faults, no page-table set-up).
  void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return io_error(seg.path + ": mmap for rewriting failed: " + std::strerror(errno));
  seg.map = static_cast<uint8_t*>(m);
  seg.size = size;
  seg.dtype = options_.dtype;
  seg.offsets = std::move(offsets);
  for (const ParamView& p : params) {
    seg.names.push_back(p.name);
    seg.shapes.push_back(p.shape);
  }
  return true;
}

Expected<SyncReport> WeightSync::write(const Trainer& trainer, uint64_t version) {
  SyncReport r;
  r.weight_version = version;
  Segment& seg = segments_[next_];
  r.path = seg.path;
  const std::vector<ParamView> params = trainer.parameters();
  for (const ParamView& p : params) r.bytes += uint64_t(p.numel) * dtype_size(options_.dtype);
  const auto t0 = clock_type::now();
  const bool in_place = options_.reuse_segments && options_.bucket_bytes == 0;
  // NOTE: seg is not mapped by the target: it either never took it, or has swapped to the other
  // segment since (swapped() only advances next_ after a swap).
  if (in_place && !matches(seg, params, options_.dtype)) {
    TIDAL_ASSIGN_OR_RETURN(bool mapped, map_segment(seg, params));
    (void)mapped;
  }
  if (in_place && seg.map) {
    for (size_t i = 0; i < params.size(); ++i) {
      convert_f32(params[i].data, params[i].numel, options_.dtype, seg.map + seg.offsets[i]);
    }
  } else {
    unmap(seg);
    TIDAL_RETURN_IF_ERROR(write_weights_file(params, r.path, options_.dtype, options_.bucket_bytes, {{"format", "pt"}}));
    if (in_place) {
      TIDAL_ASSIGN_OR_RETURN(bool mapped, map_segment(seg, params));  // for the next syncs
      (void)mapped;
    }
  }
  r.write_seconds = seconds_since(t0);
  return r;
}

void WeightSync::swapped(bool ok) {
  if (!options_.reuse_segments) {
    // The target maps the file (or failed to); unlinking keeps a mapping's pages alive.
    std::remove(segments_[next_].path.c_str());
    return;
  }
  if (ok) next_ = 1 - next_;
}

Expected<SyncReport> WeightSync::to_engine(const Trainer& trainer, Engine& engine, uint64_t version) {
  TIDAL_ASSIGN_OR_RETURN(SyncReport r, write(trainer, version));
  const auto t0 = clock_type::now();
  Status st = engine.update_weights(r.path, version);
  r.load_seconds = seconds_since(t0);
  swapped(st.is_ok());
  if (!st.is_ok()) return st;
  return r;
}

Expected<SyncReport> WeightSync::to_server(const Trainer& trainer, const std::string& host, uint16_t port,
                                           uint64_t version, const std::string& in_flight,
                                           const std::string& api_key) {
  TIDAL_ASSIGN_OR_RETURN(SyncReport r, write(trainer, version));
  http::HttpClient client(host, port);
  client.set_api_key(api_key);
  const nlohmann::json body = {{"path", r.path}, {"weight_version", version}, {"in_flight", in_flight}};
  const auto t0 = clock_type::now();
  auto resp = client.request("POST", "/admin/update_weights", body.dump(), {{"Content-Type", "application/json"}});
  r.load_seconds = seconds_since(t0);
  const bool ok = resp && resp->status == 200;
  swapped(ok);
  if (!resp) return resp.status();
  if (!ok) {
    return internal_error(host + ":" + std::to_string(port) + " /admin/update_weights answered " +
                          std::to_string(resp->status) + ": " + resp->body);
  }
  return r;
}

Expected<SyncReport> sync_engine(const Trainer& trainer, Engine& engine, uint64_t version, WeightSyncOptions options) {
  options.reuse_segments = false;
  WeightSync sync(options);
  return sync.to_engine(trainer, engine, version);
}

Expected<SyncReport> sync_server(const Trainer& trainer, const std::string& host, uint16_t port, uint64_t version,
                                 WeightSyncOptions options, const std::string& in_flight, const std::string& api_key) {
  options.reuse_segments = false;
  WeightSync sync(options);
  return sync.to_server(trainer, host, port, version, in_flight, api_key);
}

}  // namespace tidal::rl
