#include "tidal/model/kv_cache.h"

namespace tidal {

KvCache::KvCache(const ModelConfig& config, int64_t capacity)
    : n_layers_(config.n_layers),
      capacity_(capacity),
      row_(config.n_kv_heads * config.head_dim),
      k_(size_t(n_layers_ * capacity_ * row_)),
      v_(size_t(n_layers_ * capacity_ * row_)) {}

}  // namespace tidal
