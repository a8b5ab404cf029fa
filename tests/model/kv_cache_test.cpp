// PagedKvStorage: element types, the FP8 KV format (E4M3 codes with one F32 scale per token and
// KV head) and its round trip, sizes, and block copies.
#include "tidal/model/kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tidal/core/fp8.h"

namespace tidal {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 3;
  c.head_dim = 40;  // not a multiple of 16: the kernels' tails
  return c;
}

// K/V rows whose heads differ in magnitude by 10^5, so one scale per head matters.
std::vector<float> rows(int64_t row, int64_t hd, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(row));
  for (int64_t i = 0; i < row; ++i) x[size_t(i)] = nd(rng) * std::pow(10.0f, float(i / hd) * 2.5f - 3.0f);
  return x;
}

TEST(PagedKvStorageTest, Fp8RoundTripPerHeadScale) {
  const ModelConfig c = small_config();
  const int64_t hd = c.head_dim, row = c.n_kv_heads * hd;
  PagedKvStorage st(c, 3, 4, DType::kF8E4M3);
  ASSERT_EQ(st.row_size(), row);
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (int64_t slot = 0; slot < 4; ++slot) {
      const auto k = rows(row, hd, uint32_t(10 * layer + slot)), v = rows(row, hd, uint32_t(100 + 10 * layer + slot));
      st.write_token(layer, 2, slot, k.data(), v.data());
      std::vector<float> k2(static_cast<size_t>(row)), v2(static_cast<size_t>(row));
      st.read_token(layer, 2, slot, k2.data(), v2.data());
      for (int pass = 0; pass < 2; ++pass) {
        const std::vector<float>& x = pass ? v : k;
        const std::vector<float>& y = pass ? v2 : k2;
        const float* scales = (pass ? st.v_scale(layer, 2) : st.k_scale(layer, 2)) + slot * c.n_kv_heads;
        const uint8_t* codes = static_cast<const uint8_t*>(pass ? st.v(layer, 2) : st.k(layer, 2)) + slot * row;
        for (int64_t h = 0; h < c.n_kv_heads; ++h) {
          float amax = 0;
          for (int64_t i = 0; i < hd; ++i) amax = std::max(amax, std::fabs(x[size_t(h * hd + i)]));
          const float s = scales[h];
          EXPECT_EQ(s, amax / kFp8E4M3Max) << "head " << h;
          for (int64_t i = 0; i < hd; ++i) {
            const size_t e = size_t(h * hd + i);
            // The stored code is the E4M3 encoding of x / s, and reading gives code * s.
            EXPECT_EQ(codes[e], f32_to_fp8_e4m3(x[e] / s));
            EXPECT_EQ(y[e], fp8_e4m3_to_f32(codes[e]) * s);
            // E4M3 error: half a step, 2^-4 relative for normal codes, s * 2^-10 among subnormals.
            EXPECT_LE(std::fabs(y[e] - x[e]), std::fabs(x[e]) / 16 + s * 0x1p-10f * 1.0001f) << "element " << e;
            if (std::fabs(x[e]) == amax) {
              EXPECT_NEAR(std::fabs(y[e]), amax, amax * 1e-6f);  // the max maps to 448
            }
          }
        }
      }
    }
  }
}

TEST(PagedKvStorageTest, Fp8ZeroAndNonFiniteRows) {
  const ModelConfig c = small_config();
  const int64_t row = c.n_kv_heads * c.head_dim;
  PagedKvStorage st(c, 1, 2, DType::kF8E4M3);
  std::vector<float> k(static_cast<size_t>(row), 0.0f), v(static_cast<size_t>(row), 1.0f), k2(static_cast<size_t>(row)), v2(static_cast<size_t>(row));
  v[5] = NAN;  // head 0 of V is non-finite
  st.write_token(0, 0, 1, k.data(), v.data());
  st.read_token(0, 0, 1, k2.data(), v2.data());
  for (int64_t i = 0; i < row; ++i) EXPECT_EQ(k2[size_t(i)], 0.0f);
  EXPECT_EQ(st.k_scale(0, 0)[c.n_kv_heads], 0.0f);
  for (int64_t i = 0; i < c.head_dim; ++i) EXPECT_TRUE(std::isnan(v2[size_t(i)])) << "NaN must reach the reader";
  for (int64_t i = c.head_dim; i < row; ++i) EXPECT_EQ(v2[size_t(i)], 1.0f);  // other heads unaffected
}

TEST(PagedKvStorageTest, SizesAndBlockCopies) {
  const ModelConfig c = small_config();
  const size_t row = size_t(c.n_kv_heads * c.head_dim);
  EXPECT_EQ(PagedKvStorage::bytes_per_token(c, DType::kBF16), 2 * 2 * row * 2);
  EXPECT_EQ(PagedKvStorage::bytes_per_token(c, DType::kF8E4M3), 2 * 2 * (row + 3 * sizeof(float)));
  PagedKvStorage st(c, 5, 4, DType::kF8E4M3);
  EXPECT_EQ(st.bytes(), 5 * 4 * PagedKvStorage::bytes_per_token(c, DType::kF8E4M3));
  PagedKvStorage bf(c, 5, 4, DType::kBF16);
  EXPECT_EQ(bf.k_scale(0, 0), nullptr);
  EXPECT_TRUE(PagedKvStorage::supports(DType::kF8E4M3));
  EXPECT_FALSE(PagedKvStorage::supports(DType::kF8E5M2));
  EXPECT_FALSE(PagedKvStorage::supports(DType::kI8));

  // copy_block carries codes and scales of the first n slots, every layer.
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (int64_t slot = 0; slot < 3; ++slot) {
      const auto k = rows(int64_t(row), c.head_dim, uint32_t(slot + 7 * layer)), v = rows(int64_t(row), c.head_dim, uint32_t(50 + slot));
      st.write_token(layer, 1, slot, k.data(), v.data());
    }
  }
  st.copy_block(1, 4, 3);
  std::vector<float> a(row), b(row), a2(row), b2(row);
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (int64_t slot = 0; slot < 3; ++slot) {
      st.read_token(layer, 1, slot, a.data(), b.data());
      st.read_token(layer, 4, slot, a2.data(), b2.data());
      EXPECT_EQ(a, a2);
      EXPECT_EQ(b, b2);
    }
  }
}

}  // namespace
}  // namespace tidal
