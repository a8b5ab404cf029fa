#include "tidal/core/tensor.h"

#include <gtest/gtest.h>

namespace tidal {
namespace {

TEST(TensorTest, ContiguousStridesAndRows) {
  float buf[24];
  Tensor t = Tensor::contiguous(buf, DType::kF32, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.stride[0], 12);
  EXPECT_EQ(t.stride[1], 4);
  EXPECT_EQ(t.stride[2], 1);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.shape_string(), "[2, 3, 4]");
  EXPECT_EQ(t.row(1), static_cast<void*>(buf + 12));
  t.stride[0] = 13;
  EXPECT_FALSE(t.is_contiguous());
}

}  // namespace
}  // namespace tidal
