#include "tidal/model/weight_store.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tidal/core/tensor.h"

namespace tidal {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
}  // namespace

Expected<WeightStore> WeightStore::open(const std::string& model_dir) {
  WeightStore store;
  const fs::path dir(model_dir);
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  std::vector<std::string> shard_names;
  if (fs::is_regular_file(dir)) {  // a single .safetensors file (e.g. a weight update, /dev/shm/x)
    auto f = SafetensorsFile::open(dir.string());
    if (!f) return f.status();
    store.files_.push_back(std::make_unique<SafetensorsFile>(std::move(f).value()));
    for (const auto& [name, t] : store.files_[0]->tensors()) store.index_[name] = {0, &t};
    return store;
  }
  if (!fs::exists(dir)) return not_found(model_dir + ": no such file or directory");
  if (fs::exists(index)) {
    std::ifstream in(index);
    std::stringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return invalid_argument(index.string() + ": not valid JSON");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) return invalid_argument(index.string() + ": missing field 'weight_map'");
    std::set<std::string> names;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) return invalid_argument(index.string() + ": weight_map['" + it.key() + "'] is not a file name");
      const std::string f = it.value().get<std::string>();
      if (f.find('/') != std::string::npos || f == "..") {
        return invalid_argument(index.string() + ": weight_map['" + it.key() + "'] names a path outside the folder");
      }
      names.insert(f);
    }
    shard_names.assign(names.begin(), names.end());
    for (const auto& name : shard_names) {
      auto f = SafetensorsFile::open((dir / name).string());
      if (!f) return f.status();
      store.files_.push_back(std::make_unique<SafetensorsFile>(std::move(f).value()));
    }
    // Every tensor the index names must be in the shard it names.
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const std::string f = it.value().get<std::string>();
      size_t k = size_t(std::lower_bound(shard_names.begin(), shard_names.end(), f) - shard_names.begin());
      const TensorInfo* t = store.files_[k]->find(it.key());
      if (!t) return data_loss((dir / f).string() + ": missing tensor '" + it.key() + "' listed in the index");
      store.index_[it.key()] = {k, t};
    }
  } else if (fs::exists(single)) {
    auto f = SafetensorsFile::open(single.string());
    if (!f) return f.status();
    store.files_.push_back(std::make_unique<SafetensorsFile>(std::move(f).value()));
    for (const auto& [name, t] : store.files_[0]->tensors()) store.index_[name] = {0, &t};
  } else {
    return not_found(model_dir + ": no model.safetensors or model.safetensors.index.json");
  }
  return store;
}

Expected<TensorRef> WeightStore::get(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return not_found("missing tensor '" + name + "' (looked in " + files_[0]->path() +
                     (files_.size() > 1 ? " and the other shards)" : ")"));
  }
  const auto& [k, info] = it->second;
  if (info->shape != shape) {
    return data_loss(files_[k]->path() + ": tensor '" + name + "' has shape " + shape_string(info->shape) +
                     ", the config implies " + shape_string(shape));
  }
  return TensorRef{info, files_[k]->data(*info), &files_[k]->path()};
}

Expected<TensorRef> WeightStore::get_any(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return not_found("missing tensor '" + name + "' (looked in " + files_[0]->path() +
                     (files_.size() > 1 ? " and the other shards)" : ")"));
  }
  const auto& [k, info] = it->second;
  return TensorRef{info, files_[k]->data(*info), &files_[k]->path()};
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, e] : index_) out.push_back(name);
  return out;
}

uint64_t WeightStore::total_bytes() const {
  uint64_t n = 0;
  for (const auto& [name, e] : index_) n += e.second->nbytes;
  return n;
}

}  // namespace tidal
