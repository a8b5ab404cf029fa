// WeightStore: the tensors of a Hugging Face model folder, from model.safetensors or from the
// shards listed in model.safetensors.index.json, memory-mapped (zero-copy). Lookups check the
// shape and name the file at fault.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tidal/model/safetensors.h"

namespace tidal {

struct TensorRef {
  const TensorInfo* info = nullptr;
  const void* data = nullptr;
  const std::string* file = nullptr;  // path of the shard holding it
};

class WeightStore {
 public:
  // A model folder (model.safetensors or an index + shards) or a single .safetensors file.
  static Expected<WeightStore> open(const std::string& model_dir);

  bool contains(const std::string& name) const { return index_.count(name) > 0; }
  // The tensor `name`, which must have exactly `shape`; errors name tensor, file and shapes.
  Expected<TensorRef> get(const std::string& name, const std::vector<int64_t>& shape) const;
  // The tensor `name` whatever its shape (quantized checkpoints: codes and scales are checked
  // against the layout by the caller).
  Expected<TensorRef> get_any(const std::string& name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  size_t n_tensors() const { return index_.size(); }
  size_t n_files() const { return files_.size(); }
  uint64_t total_bytes() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<size_t, const TensorInfo*>> index_;  // name -> (file, info)
};

}  // namespace tidal
