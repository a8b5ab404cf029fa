// KV storage for the forward pass.
//
// PagedKvStorage holds keys and values for every layer in fixed-size blocks:
//   k(layer, block) -> [block_size][n_kv_heads * head_dim] elements of `dtype` (F32, F16, BF16 or
//   F8_E4M3);
// a sequence owns an ordered list of block ids (its block table); position p of the sequence
// lives in block table[p / block_size], slot p % block_size. The engine's BlockPool decides which
// blocks a sequence gets; this class only stores bytes.
//
// FP8 (dtype F8_E4M3): each element is an E4M3 code, and each (token, KV head) row of head_dim
// values has its own F32 scale, s = amax / 448 over that row, value = decode(code) * s:
//   k_scale(layer, block) -> [block_size][n_kv_heads] floats (same for v_scale).
// A row's codes and scale depend only on that token's own K/V, never on other tokens of the block,
// so the stored cache - and every output read from it - is the same whatever batch, chunking or
// prefix-cache hit produced it (per-block scales would have to be recomputed, and earlier tokens
// requantized, whenever a later token raised the block's maximum). Cost: 4 bytes per head_dim
// codes (6% of the codes at head_dim 64).
//
// KvCache is the simple single-sequence case (one block as large as the sequence): the CLI's
// `score` and the tests use it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tidal/core/arena.h"
#include "tidal/core/dtype.h"
#include "tidal/model/config.h"

namespace tidal {

class PagedKvStorage {
 public:
  PagedKvStorage(const ModelConfig& config, int64_t n_blocks, int64_t block_size, DType dtype);

  int64_t n_blocks() const { return n_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t row_size() const { return row_; }  // n_kv_heads * head_dim (elements)
  DType dtype() const { return dtype_; }
  size_t bytes() const { return data_.size() + scales_.size() * sizeof(float); }
  // Bytes of K+V one token occupies over all layers (FP8: codes and scales).
  static size_t bytes_per_token(const ModelConfig& config, DType dtype);
  // The element types attention can read: F32, F16, BF16 and F8_E4M3.
  static bool supports(DType dtype);

  void* k(int64_t layer, int64_t block) { return at(0, layer, block); }
  void* v(int64_t layer, int64_t block) { return at(1, layer, block); }
  // FP8 only (nullptr otherwise): [block_size][n_kv_heads] F32 scales of the block's rows.
  float* k_scale(int64_t layer, int64_t block) { return scale_at(0, layer, block); }
  float* v_scale(int64_t layer, int64_t block) { return scale_at(1, layer, block); }
  // Stores one token's K and V rows (F32, row_size() values each) into (block, slot) of `layer`,
  // converting to dtype(): 16-bit round to nearest even; FP8 quantizes each head's row.
  void write_token(int64_t layer, int64_t block, int64_t slot, const float* k, const float* v);
  // The values attention sees for that token, as F32 (FP8: code * scale). For tests and tools.
  void read_token(int64_t layer, int64_t block, int64_t slot, float* k, float* v);
  // Copy the K/V of `n` slots (all layers) from one block to another (copy-on-write for forks).
  void copy_block(int64_t src, int64_t dst, int64_t n);

 private:
  void* at(int which, int64_t layer, int64_t block);
  float* scale_at(int which, int64_t layer, int64_t block);
  int64_t n_layers_, n_blocks_, block_size_, row_, n_kv_heads_;
  DType dtype_;
  size_t block_bytes_;
  AlignedBuffer<uint8_t> data_;  // [2][n_layers][n_blocks][block_size][row]
  AlignedBuffer<float> scales_;  // FP8: [2][n_layers][n_blocks][block_size][n_kv_heads]; else empty
};

// A sequence's view for one forward call: where its K/V live and how many positions are valid.
struct KvSlots {
  PagedKvStorage* storage = nullptr;
  std::span<const int32_t> block_table;  // must cover n_past + the new tokens
  int64_t n_past = 0;                    // positions [0, n_past) already hold valid K/V
};

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t capacity, DType dtype = DType::kF32);

  int64_t capacity() const { return storage_.block_size(); }
  int64_t n_tokens() const { return n_tokens_; }
  KvSlots slots() { return {&storage_, table_, n_tokens_}; }
  void advance(int64_t n) { n_tokens_ += n; }  // after a successful forward of n tokens
  void clear() { n_tokens_ = 0; }

 private:
  PagedKvStorage storage_;
  std::vector<int32_t> table_ = {0};
  int64_t n_tokens_ = 0;
};

}  // namespace tidal
