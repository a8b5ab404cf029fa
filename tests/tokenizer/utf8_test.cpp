#include "tidal/tokenizer/utf8.h"

#include <gtest/gtest.h>

namespace tidal {
namespace {

std::string lossy(std::string_view s) {
  std::string out;
  utf8::append_lossy(s, out);
  return out;
}

TEST(Utf8, ValidTextIsUnchanged) {
  const std::string s = "a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80";
  EXPECT_TRUE(utf8::is_valid(s));
  EXPECT_EQ(lossy(s), s);
}

// Expected values follow Rust's String::from_utf8_lossy (one U+FFFD per maximal invalid prefix).
TEST(Utf8, LossyReplacesMaximalInvalidSubsequences) {
  const std::string r(utf8::kReplacement);
  EXPECT_EQ(lossy("\x80"), r);
  EXPECT_EQ(lossy("a\xe4\xb8z"), "a" + r + "z");          // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(lossy("\xf0\x9f\x98"), r);                     // truncated at end
  EXPECT_EQ(lossy("\xed\xa0\x80"), r + r + r);             // surrogate: lead then two strays
  EXPECT_EQ(lossy("\xc0\xaf"), r + r);                     // overlong
  EXPECT_EQ(lossy("\xf4\x90\x80\x80"), r + r + r + r);     // above U+10FFFF
  EXPECT_EQ(lossy("\xe0\x80"), r + r);
  EXPECT_FALSE(utf8::is_valid("\xe4\xb8"));
}

TEST(Utf8, HoldIncompleteKeepsOnlyAValidPrefix) {
  std::string out;
  EXPECT_EQ(utf8::append_lossy("ab\xe4\xb8", out, true), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  EXPECT_EQ(utf8::append_lossy("ab\xe4z", out, true), 4u);  // not a prefix any more
  EXPECT_EQ(out, "ab" + std::string(utf8::kReplacement) + "z");
}

}  // namespace
}  // namespace tidal
