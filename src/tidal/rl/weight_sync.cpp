#include "tidal/rl/weight_sync.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "tidal/engine/engine.h"
#include "tidal/http/http_client.h"
#include "tidal/model/safetensors.h"

namespace tidal::rl {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

void convert(const float* src, int64_t n, DType dtype, uint8_t* dst) {
  switch (dtype) {
    case DType::kF32: std::memcpy(dst, src, size_t(n) * 4); break;
    case DType::kBF16: {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      break;
    }
    case DType::kF16: {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      break;
    }
    default: break;  // rejected by write_weights_file
  }
}

std::string segment_path(const WeightSyncOptions& o, uint64_t version) {
  static std::atomic<uint64_t> counter{0};
  return o.dir + "/tidal-weights-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-v" +
         std::to_string(version) + ".safetensors";
}

Expected<SyncReport> write_segment(const Trainer& trainer, uint64_t version, const WeightSyncOptions& o) {
  SyncReport r;
  r.weight_version = version;
  r.path = segment_path(o, version);
  const std::vector<ParamView> params = trainer.parameters();
  for (const ParamView& p : params) r.bytes += uint64_t(p.numel) * dtype_size(o.dtype);
  const auto t0 = clock_type::now();
  TIDAL_RETURN_IF_ERROR(write_weights_file(params, r.path, o.dtype, o.bucket_bytes,
                                           {{"format", "pt"}, {"weight_version", std::to_string(version)}}));
  r.write_seconds = seconds_since(t0);
  return r;
}

}  // namespace

Status write_weights_file(std::span<const ParamView> params, const std::string& path, DType dtype,
                          uint64_t bucket_bytes, const std::map<std::string, std::string>& metadata) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) {
    return invalid_argument(path + ": weights can be written as F32, F16 or BF16, not " + dtype_name(dtype));
  }
  if (bucket_bytes < 4096) return invalid_argument(path + ": bucket size must be at least 4096 bytes");
  std::vector<TensorSpec> specs;
  for (const ParamView& p : params) specs.push_back({p.name, dtype, p.shape});
  TIDAL_ASSIGN_OR_RETURN(SafetensorsWriter w, SafetensorsWriter::create(path, std::move(specs), metadata));
  // NOTE: one staging buffer for the whole file: a bucket is filled with converted values of
  // consecutive tensors (large tensors span several buckets) and appended when full.
  const size_t esz = dtype_size(dtype);
  const int64_t bucket_elems = int64_t(bucket_bytes / esz);
  std::vector<uint8_t> bucket(size_t(bucket_elems) * esz);
  int64_t fill = 0;
  for (const ParamView& p : params) {
    for (int64_t done = 0; done < p.numel;) {
      const int64_t n = std::min(p.numel - done, bucket_elems - fill);
      convert(p.data + done, n, dtype, bucket.data() + size_t(fill) * esz);
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

Expected<SyncReport> sync_engine(const Trainer& trainer, Engine& engine, uint64_t version,
                                 const WeightSyncOptions& options) {
  TIDAL_ASSIGN_OR_RETURN(SyncReport r, write_segment(trainer, version, options));
  const auto t0 = clock_type::now();
  Status st = engine.update_weights(r.path, version);
  r.load_seconds = seconds_since(t0);
  // The engine maps the file; unlinking keeps its pages alive until it unmaps them.
  std::remove(r.path.c_str());
  if (!st.is_ok()) return st;
  return r;
}

Expected<SyncReport> sync_server(const Trainer& trainer, const std::string& host, uint16_t port, uint64_t version,
                                 const WeightSyncOptions& options, const std::string& in_flight,
                                 const std::string& api_key) {
  TIDAL_ASSIGN_OR_RETURN(SyncReport r, write_segment(trainer, version, options));
  http::HttpClient client(host, port);
  client.set_api_key(api_key);
  const nlohmann::json body = {{"path", r.path}, {"weight_version", version}, {"in_flight", in_flight}};
  const auto t0 = clock_type::now();
  auto resp = client.request("POST", "/admin/update_weights", body.dump(), {{"Content-Type", "application/json"}});
  r.load_seconds = seconds_since(t0);
  std::remove(r.path.c_str());
  if (!resp) return resp.status();
  if (resp->status != 200) {
    return internal_error(host + ":" + std::to_string(port) + " /admin/update_weights answered " +
                          std::to_string(resp->status) + ": " + resp->body);
  }
  return r;
}

}  // namespace tidal::rl
