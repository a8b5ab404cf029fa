// The F32 -> BF16 / F16 conversion of weight sync (rl/convert.h) is bit-identical to ATen's copy_
// (what the sync used before): special values (zeros, infinities, NaNs of any sign and payload,
// rounding ties, overflow, subnormals), random bit patterns, every start alignment and tail
// length, each kernel the CPU has, and the threaded form.
#include "tidal/rl/convert.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace tidal::rl {
namespace {

std::vector<uint16_t> aten_convert(const std::vector<float>& src, DType dtype) {
  std::vector<uint16_t> out(src.size());
  convert_f32_aten(src.data(), int64_t(src.size()), dtype, out.data());
  return out;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> special_values() {
  const uint32_t bits[] = {
      0x00000000, 0x80000000, 0x7f800000, 0xff800000,                          // zeros, infinities
      0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0xffffffff,  // NaNs
      0x7fa00000, 0x7fbfffff, 0x7fc00001, 0xff812345,                          // NaNs, payloads
      0x7f7fffff, 0xff7fffff, 0x7f7f7fff, 0x7f7f8000, 0x7f7f8001,              // near the top
      0x00000001, 0x80000001, 0x007fffff, 0x00008000, 0x00018000, 0x00800000,  // subnormals
      0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001, 0x3f80ffff, 0xbf808000,  // bf16 ties
      0x3f801000, 0x3f803000, 0x3f800fff, 0x3f801001,                          // f16 ties
      0x477fe000, 0x477ff000, 0x477fefff, 0x47800000, 0x38800000, 0x33800000,  // f16 range
      0x33000000, 0x33000001, 0x387fc000, 0x387fe000, 0x3f800000, 0xc0490fdb,
  };
  std::vector<float> v;
  for (uint32_t b : bits) v.push_back(from_bits(b));
  return v;
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = i % 3 == 0 ? from_bits(uint32_t(rng())) : normal(rng);  // any bits, or weights
  return v;
}

std::vector<ConvertIsa> isas() {
  std::vector<ConvertIsa> r = {ConvertIsa::kScalar};
  if (convert_isa_supported(ConvertIsa::kAvx2)) r.push_back(ConvertIsa::kAvx2);
  return r;
}

class ConvertTest : public ::testing::TestWithParam<DType> {};

TEST_P(ConvertTest, SpecialValuesMatchAten) {
  const DType dtype = GetParam();
  std::vector<float> src = special_values();
  // Repeated so that the vector body sees them in every lane, not only the scalar head/tail.
  for (int r = 0; r < 5; ++r) {
    const std::vector<float> base = special_values();
    src.insert(src.end(), base.begin() + r, base.end());
  }
  const std::vector<uint16_t> want = aten_convert(src, dtype);
  for (ConvertIsa isa : isas()) {
    std::vector<uint16_t> got(src.size());
    convert_f32_serial(isa, src.data(), int64_t(src.size()), dtype, got.data());
    for (size_t i = 0; i < src.size(); ++i) {
      uint32_t u;
      std::memcpy(&u, &src[i], 4);
      ASSERT_EQ(got[i], want[i]) << "isa " << int(isa) << " input 0x" << std::hex << u;
    }
  }
}

TEST_P(ConvertTest, EveryAlignmentAndLengthMatchesAten) {
  const DType dtype = GetParam();
  const std::vector<float> src = random_values(200, 11);
  for (ConvertIsa isa : isas()) {
    for (size_t start = 0; start < 17; ++start) {      // src and dst offsets (dst alignment)
      for (size_t n = 0; n + start <= 120; n += 7) {
        const std::vector<float> part(src.begin() + long(start), src.begin() + long(start + n));
        const std::vector<uint16_t> want = aten_convert(part, dtype);
        std::vector<uint16_t> buf(n + 17, 0x5555);
        convert_f32_serial(isa, src.data() + start, int64_t(n), dtype, buf.data() + start);
        for (size_t i = 0; i < start; ++i) ASSERT_EQ(buf[i], 0x5555) << "wrote before dst";
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(buf[start + i], want[i]) << "isa " << int(isa) << " n " << n;
        for (size_t i = start + n; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0x5555) << "wrote past dst";
      }
    }
  }
}

TEST_P(ConvertTest, ThreadedLargeMatchesAten) {
  const DType dtype = GetParam();
  const std::vector<float> src = random_values((size_t(1) << 20) + 1234, 7);  // several chunks
  const std::vector<uint16_t> want = aten_convert(src, dtype);
  std::vector<uint16_t> got(src.size() + 1);
  convert_f32(src.data(), int64_t(src.size()), dtype, got.data() + 1);  // torch's threads (2 on CI)
  EXPECT_EQ(std::memcmp(got.data() + 1, want.data(), want.size() * 2), 0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ConvertTest, ::testing::Values(DType::kBF16, DType::kF16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace tidal::rl
