#include "tidal/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace tidal {
namespace {

std::vector<uint8_t> file_with_header(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> f(8 + header.size() + data_bytes, 0);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f[size_t(i)] = uint8_t(n >> (8 * i));
  std::memcpy(f.data() + 8, header.data(), header.size());
  return f;
}

Status parse(const std::string& header, size_t data_bytes) {
  auto f = file_with_header(header, data_bytes);
  return parse_safetensors_header(f, "x.safetensors").status();
}

TEST(SafetensorsTest, ParsesValidHeader) {
  auto f = file_with_header(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"F32","shape":[],"data_offsets":[12,16]}})", 16);
  auto h = parse_safetensors_header(f, "x.safetensors");
  ASSERT_TRUE(h) << h.status().to_string();
  EXPECT_EQ(h->tensors.at("a").dtype, DType::kBF16);
  EXPECT_EQ(h->tensors.at("a").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h->tensors.at("b").numel(), 1);
  EXPECT_EQ(h->metadata.at("format"), "pt");
}

TEST(SafetensorsTest, RejectsBadFilesWithNamedErrors) {
  struct Case { std::string header; size_t data; std::string expect; };
  const std::vector<Case> cases = {
      {"{", 0, "not valid JSON"},
      {"[1,2]", 0, "not a JSON object"},
      {R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}})", 1, "tensor 'a' has unsupported dtype 'Q9'"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, "tensor 'a' data_offsets [0, 16] run past the end"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", 16, "needs 16 bytes but data_offsets span 12"},
      {R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", 16, "not a non-negative integer"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", 16, "end before they begin"},
      {R"({"a":{"dtype":"F32","shape":[4]}})", 16, "no 'data_offsets'"},
      {R"({"a":{"shape":[4],"data_offsets":[0,16]}})", 16, "no string 'dtype'"},
      {R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", 16, "too large"},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
       "overlap"},
  };
  for (const auto& c : cases) {
    Status s = parse(c.header, c.data);
    EXPECT_FALSE(s.is_ok()) << c.header;
    EXPECT_NE(s.message().find("x.safetensors"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << "got: " << s.message() << "\nwant: " << c.expect;
  }
}

TEST(SafetensorsTest, RejectsTruncatedHeaders) {
  std::vector<uint8_t> tiny = {1, 2, 3};
  EXPECT_NE(parse_safetensors_header(tiny, "t").status().message().find("too short"), std::string::npos);
  auto f = file_with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  f.resize(20);  // header cut short
  EXPECT_NE(parse_safetensors_header(f, "t").status().message().find("runs past the end"), std::string::npos);
  std::vector<uint8_t> huge(16, 0xff);  // header length 2^64-1
  EXPECT_NE(parse_safetensors_header(huge, "t").status().message().find("exceeds"), std::string::npos);
}

TEST(SafetensorsTest, WriteThenOpenRoundTrips) {
  const std::string path = (std::filesystem::temp_directory_path() / "tidal_st_roundtrip.safetensors").string();
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3f80, 0x4000};
  ASSERT_TRUE(write_safetensors(path, {{"a", DType::kF32, {2, 3}, {reinterpret_cast<uint8_t*>(a.data()), 24}},
                                       {"b", DType::kBF16, {2}, {reinterpret_cast<uint8_t*>(b.data()), 4}}})
                  .is_ok());
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f) << f.status().to_string();
  const TensorInfo* ta = f->find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(std::memcmp(f->data(*ta), a.data(), 24), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data(*ta)) % 8, 0u);  // data section is 8-byte aligned
  EXPECT_EQ(f->find("c"), nullptr);
  std::filesystem::remove(path);
  auto missing = SafetensorsFile::open(path);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace tidal
