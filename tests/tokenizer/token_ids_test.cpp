#include "tidal/tokenizer/token_ids.h"

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace tidal {
namespace {

using Ids = std::vector<int32_t>;

TEST(TokenIds, ParsesSpacesCommasAndNewlines) {
  EXPECT_EQ(*parse_token_ids("1 22 333"), (Ids{1, 22, 333}));
  EXPECT_EQ(*parse_token_ids("1,2,3"), (Ids{1, 2, 3}));
  EXPECT_EQ(*parse_token_ids("  7\n8\r\n\t9 ,10,\n"), (Ids{7, 8, 9, 10}));
  EXPECT_EQ(*parse_token_ids("0 2147483647"), (Ids{0, 2147483647}));
}

TEST(TokenIds, RejectsBadItemsNamingThem) {
  auto r = parse_token_ids("1 2 x3 4");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("#2 'x3'"), std::string::npos) << r.status().message();
  EXPECT_FALSE(parse_token_ids("-1"));
  EXPECT_FALSE(parse_token_ids("+1"));
  EXPECT_FALSE(parse_token_ids("1.5"));
  EXPECT_FALSE(parse_token_ids("2147483648"));
  EXPECT_FALSE(parse_token_ids("99999999999999999999"));
  EXPECT_FALSE(parse_token_ids("1;2"));
}

TEST(TokenIds, EmptyListIsAnError) {
  EXPECT_FALSE(parse_token_ids(""));
  auto r = parse_token_ids(" ,\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("empty"), std::string::npos);
}

TEST(TokenIds, ChecksTheVocabularySize) {
  EXPECT_EQ(*parse_token_ids("0 31999", 32000), (Ids{0, 31999}));
  auto r = parse_token_ids("5 32000", 32000);
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("#1 '32000' is not below the vocabulary size 32000"), std::string::npos)
      << r.status().message();
}

TEST(TokenIds, ReadsAFileAndNamesItInErrors) {
  const std::string path = ::testing::TempDir() + "token_ids_test.txt";
  {
    std::ofstream(path) << "1 2\n3\n";
  }
  EXPECT_EQ(*read_token_ids(path), (Ids{1, 2, 3}));
  {
    std::ofstream(path) << "1 oops\n";
  }
  auto bad = read_token_ids(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find(path), std::string::npos);
  EXPECT_NE(bad.status().message().find("'oops'"), std::string::npos);
  std::remove(path.c_str());
  auto missing = read_token_ids(path);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.status().message().find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace tidal
