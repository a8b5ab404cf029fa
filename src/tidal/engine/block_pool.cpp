#include "tidal/engine/block_pool.h"

#include <algorithm>
#include <cassert>

namespace tidal {

BlockPool::BlockPool(int32_t n_blocks, int32_t block_size)
    : block_size_(block_size), blocks_(size_t(n_blocks)), tokens_(size_t(n_blocks) * size_t(block_size)) {
  by_hash_.reserve(size_t(n_blocks));
  for (int32_t i = 0; i < n_blocks; ++i) push_back(i);
}

void BlockPool::unlink(int32_t id) {
  Block& b = blocks_[size_t(id)];
  if (b.prev >= 0) blocks_[size_t(b.prev)].next = b.next; else head_ = b.next;
  if (b.next >= 0) blocks_[size_t(b.next)].prev = b.prev; else tail_ = b.prev;
  b.prev = b.next = -1;
  --n_free_;
}

void BlockPool::push_back(int32_t id) {
  Block& b = blocks_[size_t(id)];
  b.prev = tail_;
  b.next = -1;
  if (tail_ >= 0) blocks_[size_t(tail_)].next = id; else head_ = id;
  tail_ = id;
  ++n_free_;
}

void BlockPool::evict(int32_t id) {
  Block& b = blocks_[size_t(id)];
  if (!b.cached) return;
  auto it = by_hash_.find(b.hash);
  if (it != by_hash_.end() && it->second == id) by_hash_.erase(it);
  b.cached = false;
  ++n_evictions_;
}

std::optional<std::vector<int32_t>> BlockPool::allocate(int32_t n) {
  if (!can_allocate(n)) return std::nullopt;
  std::vector<int32_t> out;
  out.reserve(size_t(n));
  for (int32_t i = 0; i < n; ++i) {
    const int32_t id = head_;
    unlink(id);
    evict(id);
    blocks_[size_t(id)].ref_count = 1;
    out.push_back(id);
  }
  return out;
}

void BlockPool::touch(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    Block& b = blocks_[size_t(id)];
    if (b.ref_count == 0) unlink(id);
    ++b.ref_count;
  }
}

void BlockPool::release(std::span<const int32_t> ids) {
  for (int32_t id : ids) {
    Block& b = blocks_[size_t(id)];
    assert(b.ref_count > 0);
    if (--b.ref_count == 0) push_back(id);
  }
}

uint64_t BlockPool::chain_hash(uint64_t parent, std::span<const int32_t> tokens) {
  // splitmix64-style mixing of the parent and each token id.
  uint64_t h = parent ^ 0x9e3779b97f4a7c15ull;
  for (int32_t t : tokens) {
    h ^= uint64_t(uint32_t(t)) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
  }
  return h;
}

std::optional<int32_t> BlockPool::lookup(uint64_t hash, int32_t parent, std::span<const int32_t> tokens) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const int32_t id = it->second;
  const Block& b = blocks_[size_t(id)];
  if (b.parent != parent || int32_t(tokens.size()) != block_size_ ||
      !std::equal(tokens.begin(), tokens.end(), tokens_.begin() + ptrdiff_t(size_t(id) * size_t(block_size_)))) {
    return std::nullopt;  // a collision: treat as a miss
  }
  return id;
}

void BlockPool::flush_cache() {
  for (auto& b : blocks_) b.cached = false;
  by_hash_.clear();
}

void BlockPool::cache(int32_t id, uint64_t hash, int32_t parent, std::span<const int32_t> tokens) {
  Block& b = blocks_[size_t(id)];
  if (b.cached || by_hash_.count(hash)) return;
  b.cached = true;
  b.hash = hash;
  b.parent = parent;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + ptrdiff_t(size_t(id) * size_t(block_size_)));
  by_hash_.emplace(hash, id);
}

}  // namespace tidal
