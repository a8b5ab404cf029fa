#include "tidal/core/status.h"

#include <gtest/gtest.h>

namespace tidal {
namespace {

Expected<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("x must be positive, got " + std::to_string(x));
  return x;
}

Expected<int> twice(int x) {
  TIDAL_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

Status check(int x) {
  TIDAL_RETURN_IF_ERROR(parse_positive(x).status());
  return Status::ok();
}

TEST(StatusTest, ValueAndErrorPropagate) {
  EXPECT_EQ(*twice(4), 8);
  auto bad = twice(-1);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "x must be positive, got -1");
  EXPECT_EQ(bad.status().to_string(), "invalid argument: x must be positive, got -1");
  EXPECT_TRUE(check(3).is_ok());
  EXPECT_EQ(check(0).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tidal
