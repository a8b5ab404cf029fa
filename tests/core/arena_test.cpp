#include "tidal/core/arena.h"

#include <gtest/gtest.h>

namespace tidal {
namespace {

TEST(ArenaTest, AlignedAndBounded) {
  Arena a(1000);
  void* p1 = a.alloc(3);
  void* p2 = a.alloc(100);
  ASSERT_NE(p1, nullptr);
  ASSERT_NE(p2, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p1) % kAlignment, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p2) % kAlignment, 0u);
  EXPECT_EQ(a.alloc(2000), nullptr);  // does not fit: a value, not a crash
  a.reset();
  EXPECT_EQ(a.alloc(1000), p1);
}

TEST(ArenaTest, AlignedBufferZeroed) {
  AlignedBuffer<float> b(37);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kAlignment, 0u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], 0.0f);
}

}  // namespace
}  // namespace tidal
