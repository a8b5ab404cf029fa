// BlockPool: the engine's KV blocks (ids 0..n-1), their reference counts, and the prefix cache.
//
// A block is either in use (ref_count > 0) or on the free queue. The free queue is an intrusive
// doubly linked list in eviction order (least recently freed first): allocation takes from the
// head, release appends at the tail, and a prefix-cache hit on a free block unlinks it in O(1).
// A free block may still hold cached K/V (it has a hash): it is reusable by a prefix hit until
// allocation evicts it. NOTE: no allocation happens after construction; all links are indices.
//
// Prefix-cache keys chain: hash(block i) = H(hash(block i-1), token ids of block i). A hit is
// confirmed against the stored parent and token ids, so a 64-bit hash collision cannot return
// the wrong K/V.
//
// Thread-safety: none; the engine's step loop owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace tidal {

class BlockPool {
 public:
  BlockPool(int32_t n_blocks, int32_t block_size);

  int32_t n_blocks() const { return int32_t(blocks_.size()); }
  int32_t block_size() const { return block_size_; }
  int32_t n_free() const { return n_free_; }  // includes cached-but-unreferenced blocks
  int32_t n_used() const { return n_blocks() - n_free_; }

  // can_allocate / allocate: n fresh blocks (ref_count 1) from the head of the free queue,
  // evicting any cached content they held. allocate() returns nullopt iff !can_allocate(n).
  bool can_allocate(int32_t n) const { return n <= n_free_; }
  std::optional<std::vector<int32_t>> allocate(int32_t n);

  // Adds a reference to blocks found by lookup() (unlinking them from the free queue if needed).
  void touch(std::span<const int32_t> ids);
  // Drops one reference from each block; blocks reaching 0 go to the free queue's tail, in the
  // given order (callers pass a request's blocks last-first so its tail is evicted first).
  void release(std::span<const int32_t> ids);

  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> tokens);
  // The cached block with this hash, parent block and tokens, if any (no reference is taken).
  std::optional<int32_t> lookup(uint64_t hash, int32_t parent, std::span<const int32_t> tokens) const;
  // Registers a full, computed block under `hash`. A hash already cached keeps its first block.
  void cache(int32_t id, uint64_t hash, int32_t parent, std::span<const int32_t> tokens);

  int32_t ref_count(int32_t id) const { return blocks_[size_t(id)].ref_count; }
  void flush_cache();  // forget every cached block (no block changes owner)
  int64_t n_evictions() const { return n_evictions_; }

 private:
  struct Block {
    int32_t ref_count = 0;
    int32_t prev = -1, next = -1;  // free-queue links
    bool cached = false;
    uint64_t hash = 0;
    int32_t parent = -1;
  };
  void unlink(int32_t id);
  void push_back(int32_t id);
  void evict(int32_t id);

  int32_t block_size_;
  std::vector<Block> blocks_;
  std::vector<int32_t> tokens_;  // [n_blocks][block_size]: the token ids a cached block holds
  int32_t head_ = -1, tail_ = -1, n_free_ = 0;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  int64_t n_evictions_ = 0;
};

}  // namespace tidal
