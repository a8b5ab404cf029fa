#include "tidal/core/json_nesting.h"

#include <gtest/gtest.h>

#include <string>

namespace tidal {
namespace {

std::string nested(int depth, char open = '[', char close = ']') {
  return std::string(size_t(depth), open) + std::string(size_t(depth), close);
}

TEST(JsonNesting, CountsArraysAndObjectsAtOnce) {
  EXPECT_FALSE(json_nesting_exceeds(nested(3), 3));
  EXPECT_TRUE(json_nesting_exceeds(nested(4), 3));
  EXPECT_FALSE(json_nesting_exceeds("[[1], [2], [3]]", 2));  // siblings do not add up
  EXPECT_TRUE(json_nesting_exceeds(R"({"a": [{"b": 1}]})", 2));
  EXPECT_FALSE(json_nesting_exceeds(R"({"a": [{"b": 1}]})", 3));
  EXPECT_FALSE(json_nesting_exceeds(nested(kMaxJsonNesting)));
  EXPECT_TRUE(json_nesting_exceeds(nested(kMaxJsonNesting + 1)));
  EXPECT_TRUE(json_nesting_exceeds(std::string(100000, '{')));  // unterminated: still refused
}

TEST(JsonNesting, IgnoresBracketsInsideStrings) {
  EXPECT_FALSE(json_nesting_exceeds(R"(["[[[[", "{{{{"])", 1));
  EXPECT_FALSE(json_nesting_exceeds(R"(["a\"[[[[", "\\"])", 1));  // escaped quote, then escaped backslash
  EXPECT_TRUE(json_nesting_exceeds(R"(["\\", [[1]]])", 2));       // the string ends after "\\"
  EXPECT_FALSE(json_nesting_exceeds("", 0));
  EXPECT_FALSE(json_nesting_exceeds("]]]]", 0));  // stray closers do not go negative
  EXPECT_TRUE(json_nesting_exceeds("]][[", 1));
}

}  // namespace
}  // namespace tidal
