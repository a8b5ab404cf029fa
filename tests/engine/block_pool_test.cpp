#include "tidal/engine/block_pool.h"

#include <gtest/gtest.h>

namespace tidal {
namespace {

TEST(BlockPoolTest, AllocateReleaseInLruOrder) {
  BlockPool pool(4, 2);
  EXPECT_EQ(pool.n_free(), 4);
  auto a = pool.allocate(3);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_FALSE(pool.allocate(2));  // only one left: a value, nothing changes
  EXPECT_EQ(pool.n_free(), 1);
  pool.release(std::vector<int32_t>{2, 1});  // freed 2 then 1: queue is 3, 2, 1
  auto b = pool.allocate(3);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (std::vector<int32_t>{3, 2, 1}));
  EXPECT_EQ(pool.n_free(), 0);
}

TEST(BlockPoolTest, CachedBlocksAreReusedUntilEvicted) {
  BlockPool pool(3, 2);
  std::vector<int32_t> t0 = {5, 6}, t1 = {7, 8};
  auto blocks = *pool.allocate(2);
  const uint64_t h0 = BlockPool::chain_hash(0, t0), h1 = BlockPool::chain_hash(h0, t1);
  pool.cache(blocks[0], h0, -1, t0);
  pool.cache(blocks[1], h1, blocks[0], t1);
  pool.release(std::vector<int32_t>{blocks[1], blocks[0]});
  // Still findable while free; a wrong parent or wrong tokens is a miss (collision guard).
  EXPECT_EQ(pool.lookup(h0, -1, t0), blocks[0]);
  EXPECT_EQ(pool.lookup(h1, blocks[0], t1), blocks[1]);
  EXPECT_EQ(pool.lookup(h1, 2, t1), std::nullopt);
  EXPECT_EQ(pool.lookup(h0, -1, t1), std::nullopt);
  // A hit takes the block off the free queue.
  pool.touch(std::vector<int32_t>{blocks[0]});
  EXPECT_EQ(pool.ref_count(blocks[0]), 1);
  EXPECT_EQ(pool.n_free(), 2);
  // Allocation evicts the least recently freed cached block first (the never-used block 2 is
  // at the head, then blocks[1]).
  auto c = *pool.allocate(2);
  EXPECT_EQ(c, (std::vector<int32_t>{2, blocks[1]}));
  EXPECT_EQ(pool.lookup(h1, blocks[0], t1), std::nullopt);
  EXPECT_EQ(pool.n_evictions(), 1);
}

TEST(BlockPoolTest, HashChainDependsOnParentAndTokens) {
  std::vector<int32_t> t = {1, 2, 3};
  EXPECT_NE(BlockPool::chain_hash(0, t), BlockPool::chain_hash(1, t));
  EXPECT_NE(BlockPool::chain_hash(0, t), BlockPool::chain_hash(0, std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(BlockPool::chain_hash(9, t), BlockPool::chain_hash(9, t));
}

}  // namespace
}  // namespace tidal
