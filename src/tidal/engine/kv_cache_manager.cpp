#include "tidal/engine/kv_cache_manager.h"

#include <algorithm>

namespace tidal {

KvCacheManager::KvCacheManager(int32_t n_blocks, int32_t block_size, bool prefix_caching)
    : pool_(n_blocks, block_size), prefix_caching_(prefix_caching) {}

void KvCacheManager::update_hashes(Sequence& s) const {
  const int64_t bs = pool_.block_size();
  while (int64_t(s.block_hashes.size() + 1) * bs <= s.n_tokens()) {
    const size_t i = s.block_hashes.size();
    const uint64_t parent = i ? s.block_hashes[i - 1] : 0;
    s.block_hashes.push_back(BlockPool::chain_hash(parent, std::span(s.tokens).subspan(i * size_t(bs), size_t(bs))));
  }
}

std::vector<int32_t> KvCacheManager::find_cached_prefix(Sequence& s) {
  std::vector<int32_t> hits;
  if (!prefix_caching_ || s.n_computed != 0 || s.params->prompt_logprobs) return hits;
  update_hashes(s);
  const int64_t bs = pool_.block_size();
  query_tokens_ += s.n_tokens();
  for (size_t i = 0; i < s.block_hashes.size() && int64_t(i + 1) * bs <= s.n_tokens() - 1; ++i) {
    auto id = pool_.lookup(s.block_hashes[i], i ? hits.back() : -1,
                           std::span(s.tokens).subspan(i * size_t(bs), size_t(bs)));
    if (!id) break;
    hits.push_back(*id);
  }
  return hits;
}

bool KvCacheManager::allocate_slots(Sequence& s, int64_t n_new, std::span<const int32_t> hits) {
  const int64_t bs = pool_.block_size();
  const int64_t n_after = s.n_computed + int64_t(hits.size()) * bs + n_new;
  const int64_t need = (n_after + bs - 1) / bs;
  const int64_t have = int64_t(s.block_table.size() + hits.size());
  const int64_t n_alloc = std::max<int64_t>(0, need - have);
  int64_t free_hits = 0;  // hits sitting in the free queue: adopting them uses free capacity
  for (int32_t id : hits) free_hits += pool_.ref_count(id) == 0;
  if (!pool_.can_allocate(int32_t(n_alloc + free_hits))) return false;
  if (!hits.empty()) {
    pool_.touch(hits);
    s.block_table.insert(s.block_table.end(), hits.begin(), hits.end());
    s.n_computed += int64_t(hits.size()) * bs;
    s.n_cached_blocks = int64_t(hits.size());
    hit_tokens_ += int64_t(hits.size()) * bs;
  }
  if (n_alloc > 0) {
    auto fresh = pool_.allocate(int32_t(n_alloc));
    s.block_table.insert(s.block_table.end(), fresh->begin(), fresh->end());
  }
  return true;
}

void KvCacheManager::free(Sequence& s) {
  std::vector<int32_t> rev(s.block_table.rbegin(), s.block_table.rend());
  pool_.release(rev);
  s.block_table.clear();
  s.n_cached_blocks = 0;
}

void KvCacheManager::cache_full_blocks(Sequence& s) {
  if (!prefix_caching_) return;
  update_hashes(s);
  const int64_t bs = pool_.block_size();
  const int64_t n_full = std::min<int64_t>(s.n_computed / bs, int64_t(s.block_hashes.size()));
  for (int64_t i = s.n_cached_blocks; i < n_full; ++i) {
    pool_.cache(s.block_table[size_t(i)], s.block_hashes[size_t(i)], i ? s.block_table[size_t(i - 1)] : -1,
                std::span(s.tokens).subspan(size_t(i * bs), size_t(bs)));
  }
  s.n_cached_blocks = std::max(s.n_cached_blocks, n_full);
}

}  // namespace tidal
