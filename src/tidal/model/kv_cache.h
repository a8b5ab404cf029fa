// KvCache: one sequence's keys and values, contiguous per layer, F32.
// Layout per layer: k[pos][n_kv_heads * head_dim], v likewise; positions [0, n_tokens) are valid.
// (The paged, shared cache of the engine replaces this for serving; this one is the simple
// reference the engine's cache is tested against.)
#pragma once

#include <cstdint>

#include "tidal/core/arena.h"
#include "tidal/model/config.h"

namespace tidal {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t capacity);

  int64_t capacity() const { return capacity_; }
  int64_t n_tokens() const { return n_tokens_; }
  int64_t row_size() const { return row_; }  // n_kv_heads * head_dim
  float* k(int64_t layer, int64_t pos) { return k_.data() + (layer * capacity_ + pos) * row_; }
  float* v(int64_t layer, int64_t pos) { return v_.data() + (layer * capacity_ + pos) * row_; }
  // Called by the forward pass once all layers have stored the new positions.
  void advance(int64_t n) { n_tokens_ += n; }
  void clear() { n_tokens_ = 0; }
  // Drop positions >= n (e.g. to re-score from a shared prefix).
  void truncate(int64_t n) { if (n < n_tokens_) n_tokens_ = n; }

 private:
  int64_t n_layers_, capacity_, row_;
  int64_t n_tokens_ = 0;
  AlignedBuffer<float> k_, v_;
};

}  // namespace tidal
