#include "tidal/model/kv_cache.h"

#include <cstring>

namespace tidal {

PagedKvStorage::PagedKvStorage(const ModelConfig& config, int64_t n_blocks, int64_t block_size, DType dtype)
    : n_layers_(config.n_layers),
      n_blocks_(n_blocks),
      block_size_(block_size),
      row_(config.n_kv_heads * config.head_dim),
      dtype_(dtype),
      block_bytes_(size_t(block_size * row_) * dtype_size(dtype)),
      data_(2 * size_t(n_layers_ * n_blocks_) * block_bytes_) {}

size_t PagedKvStorage::bytes_per_token(const ModelConfig& c, DType dtype) {
  return 2 * size_t(c.n_layers * c.n_kv_heads * c.head_dim) * dtype_size(dtype);
}

void* PagedKvStorage::at(int which, int64_t layer, int64_t block) {
  return data_.data() + ((size_t(which) * size_t(n_layers_) + size_t(layer)) * size_t(n_blocks_) + size_t(block)) *
                            block_bytes_;
}

void PagedKvStorage::copy_block(int64_t src, int64_t dst, int64_t n) {
  const size_t bytes = size_t(n * row_) * dtype_size(dtype_);
  for (int64_t l = 0; l < n_layers_; ++l) {
    std::memcpy(k(l, dst), k(l, src), bytes);
    std::memcpy(v(l, dst), v(l, src), bytes);
  }
}

KvCache::KvCache(const ModelConfig& config, int64_t capacity, DType dtype)
    : storage_(config, 1, capacity, dtype) {}

}  // namespace tidal
