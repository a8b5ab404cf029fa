// KvCacheManager: gives sequences KV blocks from the BlockPool and finds their cached prefixes.
// Each check has its action: find_cached_prefix() then allocate_slots(); allocate_slots()
// returning false means "preempt someone" (nothing was changed).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tidal/engine/block_pool.h"
#include "tidal/engine/sequence.h"

namespace tidal {

class KvCacheManager {
 public:
  KvCacheManager(int32_t n_blocks, int32_t block_size, bool prefix_caching);

  // Leading full blocks of s's tokens that are in the prefix cache, for a sequence with nothing
  // computed. Never covers the last token (it is always recomputed to produce logits). Takes no
  // reference: pass the result to allocate_slots().
  std::vector<int32_t> find_cached_prefix(Sequence& s);
  // Ensures s has blocks for n_computed + (hits * block_size) + n_new tokens, adopting `hits`
  // first. On success s.block_table covers them and s.n_computed includes the hits.
  bool allocate_slots(Sequence& s, int64_t n_new, std::span<const int32_t> hits = {});
  // Releases all of s's blocks (its last block first, so it is evicted first).
  void free(Sequence& s);
  // Registers s's newly computed full blocks in the prefix cache.
  void cache_full_blocks(Sequence& s);
  // Drops every cached prefix (blocks in use stay allocated but are no longer found by lookups).
  void flush_prefix_cache() { pool_.flush_cache(); }

  const BlockPool& pool() const { return pool_; }
  int64_t prefix_query_tokens() const { return query_tokens_; }
  int64_t prefix_hit_tokens() const { return hit_tokens_; }

 private:
  void update_hashes(Sequence& s) const;

  BlockPool pool_;
  bool prefix_caching_;
  int64_t query_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace tidal
