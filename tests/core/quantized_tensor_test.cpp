#include "tidal/core/quantized_tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tidal/core/e8m0.h"
#include "tidal/core/fp4.h"
#include "tidal/core/fp8.h"

namespace tidal {
namespace {

std::vector<float> random_weights(int64_t n_out, int64_t n_in, uint32_t seed, float sd = 0.05f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> w(size_t(n_out * n_in));
  for (auto& v : w) v = nd(rng);
  return w;
}

float f32_scale(const QuantizedTensor& t, int64_t i) {
  float s;
  std::memcpy(&s, t.scales() + 4 * i, 4);
  return s;
}

TEST(QuantFormatRegistry, EveryFormatIsRegisteredInOrderAndNamed) {
  ASSERT_EQ(quant_formats().size(), size_t(kNumQuantFormats));
  for (int i = 0; i < kNumQuantFormats; ++i) {
    const QuantFormatInfo& info = quant_format_info(QuantFormat(i));
    EXPECT_EQ(int(info.format), i);
    EXPECT_EQ(quant_format_from_name(info.name), QuantFormat(i));
    EXPECT_NE(info.encode, nullptr);
    EXPECT_NE(info.decode_row, nullptr);
  }
  EXPECT_EQ(quant_format_from_name("fp8"), QuantFormat::kFp8E4M3);
  EXPECT_FALSE(quant_format_from_name("q4_0").has_value());
}

TEST(QuantizedTensorTest, LayoutsPerGranularity) {
  auto l = QuantizedTensor::make_layout({QuantFormat::kFp8E4M3, Granularity::kBlock, 128, 128}, 200, 300);
  ASSERT_TRUE(l) << l.status().to_string();
  EXPECT_EQ(l->n_scale_rows, 2);
  EXPECT_EQ(l->n_scale_cols, 3);
  EXPECT_EQ(l->row_bytes, 300);
  l = QuantizedTensor::make_layout({QuantFormat::kInt8}, 7, 33);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->block_rows, 1);
  EXPECT_EQ(l->block_cols, 33);
  EXPECT_EQ(l->n_scale_rows, 7);
  l = QuantizedTensor::make_layout({QuantFormat::kFp8E5M2, Granularity::kPerTensor}, 7, 33);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->n_scale_rows * l->n_scale_cols, 1);
  l = QuantizedTensor::make_layout({QuantFormat::kNvFp4}, 4, 33);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->row_bytes, 17);
  EXPECT_EQ(l->packing, Packing::kTwoPerByteLowFirst);
  EXPECT_EQ(l->n_scale_cols, 3);
  EXPECT_EQ(l->scale_type, ScaleType::kFp8E4M3);
  EXPECT_TRUE(l->has_global_scale);
  l = QuantizedTensor::make_layout({QuantFormat::kMxFp4}, 4, 64);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->n_scale_cols, 2);
  EXPECT_EQ(l->scale_type, ScaleType::kE8M0);
  // Errors name the format and the reason.
  auto bad = QuantizedTensor::make_layout({QuantFormat::kNvFp4, Granularity::kPerChannel}, 4, 64);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("nvfp4"), std::string::npos);
  bad = QuantizedTensor::make_layout({QuantFormat::kInt8, Granularity::kBlock, 1, 24}, 4, 64);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("multiple of 16"), std::string::npos);
  EXPECT_FALSE(QuantizedTensor::make_layout({QuantFormat::kInt8}, 0, 64));
}

TEST(QuantizedTensorTest, Int8IsSymmetricPerChannelWithinHalfAStep) {
  const int64_t n = 9, k = 70;
  auto w = random_weights(n, k, 1);
  auto q = quantize(w.data(), n, k, {QuantFormat::kInt8});
  ASSERT_TRUE(q) << q.status().to_string();
  std::vector<float> d(size_t(n * k));
  q->dequantize(d.data());
  for (int64_t r = 0; r < n; ++r) {
    float amax = 0;
    for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(w[size_t(r * k + c)]));
    EXPECT_EQ(f32_scale(*q, r), amax / 127.0f);
    for (int64_t c = 0; c < k; ++c) {
      const int8_t code = int8_t(q->data()[r * k + c]);
      EXPECT_GE(code, -127);
      EXPECT_EQ(code, int8_t(std::nearbyint(w[size_t(r * k + c)] / f32_scale(*q, r))));
      EXPECT_LE(std::fabs(d[size_t(r * k + c)] - w[size_t(r * k + c)]), 0.5001f * f32_scale(*q, r));
    }
  }
}

TEST(QuantizedTensorTest, Fp8ErrorsAreWithinHalfAnUlp) {
  const int64_t n = 130, k = 260;  // partial 128x128 blocks on both axes
  auto w = random_weights(n, k, 2);
  for (QuantFormat f : {QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2}) {
    for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kBlock}) {
      auto q = quantize(w.data(), n, k, {f, g, 128, 128});
      ASSERT_TRUE(q) << q.status().to_string();
      const bool e4m3 = f == QuantFormat::kFp8E4M3;
      const float max_code = e4m3 ? kFp8E4M3Max : kFp8E5M2Max;
      std::vector<float> d(static_cast<size_t>(k));
      for (int64_t r = 0; r < n; ++r) {
        q->dequantize_row(r, d.data());
        for (int64_t c = 0; c < k; ++c) {
          const int64_t i =
              (r / q->layout().block_rows) * q->layout().n_scale_cols + c / q->layout().block_cols;
          const float s = f32_scale(*q, i), x = w[size_t(r * k + c)];
          const uint8_t code = q->data()[r * k + c];
          // The code is the format's rounding of x / s, and decodes to code * s.
          EXPECT_EQ(code, e4m3 ? f32_to_fp8_e4m3(x / s) : f32_to_fp8_e5m2_satfinite(x / s));
          EXPECT_EQ(d[size_t(c)], (e4m3 ? fp8_e4m3_to_f32(code) : fp8_e5m2_to_f32(code)) * s);
          const float rel = e4m3 ? 1.0f / 16 : 1.0f / 8,
                      sub = e4m3 ? std::ldexp(1.0f, -10) : std::ldexp(1.0f, -17);
          EXPECT_LE(std::fabs(d[size_t(c)] - x), std::fabs(x) * rel + s * sub + 1e-12f);
          EXPECT_LE(std::fabs(x / s), max_code * 1.0001f);
        }
      }
    }
  }
}

TEST(QuantizedTensorTest, NvFp4ScalesFollowTheTwoLevelRecipe) {
  const int64_t n = 3, k = 40;  // last block of each row is partial (8 of 16)
  auto w = random_weights(n, k, 3, 1.0f);
  w[5] = 12.0f;  // the tensor amax
  auto q = quantize(w.data(), n, k, {QuantFormat::kNvFp4});
  ASSERT_TRUE(q) << q.status().to_string();
  const float g = 12.0f / (6.0f * 448.0f);
  EXPECT_EQ(q->global_scale(), g);
  EXPECT_EQ(q->scales()[0], f32_to_fp8_e4m3(12.0f / (6.0f * g)));  // block 0 holds the amax
  std::vector<float> d(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    q->dequantize_row(r, d.data());
    for (int64_t c = 0; c < k; ++c) {
      const float sb = fp8_e4m3_to_f32(q->scales()[r * 3 + c / 16]), s = sb * g;
      const uint8_t code = fp4_unpack(q->data()[r * q->layout().row_bytes + c / 2], c);
      EXPECT_EQ(code, f32_to_fp4_e2m1(w[size_t(r * k + c)] / s)) << r << "," << c;
      EXPECT_EQ(d[size_t(c)], fp4_e2m1_to_f32(code) * sb * g);
      EXPECT_LE(std::fabs(d[size_t(c)] - w[size_t(r * k + c)]), 1.0f * s * 1.0001f + 1e-6f);
    }
  }
}

TEST(QuantizedTensorTest, MxFp4UsesFloorLog2ScalesAndPacksLowNibbleFirst) {
  const int64_t n = 2, k = 33;  // odd: the last byte's high nibble must stay 0
  std::vector<float> w(size_t(n * k), 0.0f);
  w[0] = 5.9f;  // block amax 5.9: floor(log2) = 2 -> scale 2^0
  w[1] = -0.3f;
  w[32] = 0.75f;  // a block of one element: floor(log2 .75) = -1 -> scale 2^-3, code 6 (= 0.75 / 2^-3)
  // row 1 is all zero
  auto q = quantize(w.data(), n, k, {QuantFormat::kMxFp4});
  ASSERT_TRUE(q) << q.status().to_string();
  EXPECT_EQ(q->layout().row_bytes, 17);
  EXPECT_EQ(q->scales()[0], 127);
  EXPECT_EQ(q->scales()[1], 127 - 3);
  EXPECT_EQ(q->scales()[2], 0);
  EXPECT_EQ(q->data()[0], fp4_pack(f32_to_fp4_e2m1(5.9f), f32_to_fp4_e2m1(-0.3f)));
  EXPECT_EQ(q->data()[16], f32_to_fp4_e2m1(6.0f));  // high nibble 0
  std::vector<float> d(static_cast<size_t>(k));
  q->dequantize_row(0, d.data());
  EXPECT_EQ(d[0], 6.0f);
  EXPECT_EQ(d[1], -0.5f);  // -0.3 rounds to -0.5
  EXPECT_EQ(d[32], 0.75f);
  q->dequantize_row(1, d.data());
  for (float v : d) EXPECT_EQ(v, 0.0f);
}

TEST(QuantizedTensorTest, WrapBorrowsStorageAndChecksSizes) {
  const int64_t n = 5, k = 48;
  auto w = random_weights(n, k, 4);
  for (const QuantFormatInfo* info : quant_formats()) {
    auto q = quantize(w.data(), n, k, {info->format});
    ASSERT_TRUE(q) << info->name;
    auto v = QuantizedTensor::wrap(q->layout(), q->data(), q->data_bytes(), q->scales(), q->scale_bytes(),
                                   q->global_scale());
    ASSERT_TRUE(v) << v.status().to_string();
    EXPECT_FALSE(v->owns_storage());
    EXPECT_TRUE(q->owns_storage());
    std::vector<float> a(size_t(n * k)), b(a);
    q->dequantize(a.data());
    v->dequantize(b.data());
    EXPECT_EQ(a, b) << info->name;
    auto bad =
        QuantizedTensor::wrap(q->layout(), q->data(), q->data_bytes(), q->scales(), q->scale_bytes() - 1,
                              1.0f, nullptr, 0, "model.layers.0.mlp.up_proj.weight");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.status().message().find("model.layers.0.mlp.up_proj.weight"), std::string::npos);
    EXPECT_NE(bad.status().message().find("scales"), std::string::npos);
  }
}

TEST(QuantizedTensorTest, ZeroPointsAreHonouredByTheReference) {
  QuantLayout l = *QuantizedTensor::make_layout({QuantFormat::kInt8}, 2, 16);
  l.has_zero_points = true;
  std::vector<uint8_t> data(32, uint8_t(10));
  std::vector<float> scales = {0.5f, 2.0f};
  std::vector<int8_t> zp = {4, -6};
  auto t = QuantizedTensor::wrap(l, data.data(), data.size(), scales.data(), 8, 1.0f, zp.data(), 2);
  ASSERT_TRUE(t) << t.status().to_string();
  std::vector<float> d(16);
  t->dequantize_row(0, d.data());
  EXPECT_EQ(d[3], (10 - 4) * 0.5f);
  t->dequantize_row(1, d.data());
  EXPECT_EQ(d[15], (10 + 6) * 2.0f);
  l.format = QuantFormat::kFp8E4M3;
  EXPECT_FALSE(QuantizedTensor::wrap(l, data.data(), data.size(), scales.data(), 8, 1.0f, zp.data(), 2));
}

TEST(QuantizedTensorTest, RejectsNonFiniteWeightsAndAcceptsBf16Tensors) {
  const int64_t n = 3, k = 16;
  auto w = random_weights(n, k, 5);
  w[size_t(2 * k + 7)] = NAN;
  auto bad = quantize(w.data(), n, k, {QuantFormat::kFp8E4M3});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.status().message().find("[2, 7]"), std::string::npos) << bad.status().message();
  w[size_t(2 * k + 7)] = 0.01f;
  std::vector<uint16_t> bf(w.size());
  std::vector<float> wr(w.size());
  for (size_t i = 0; i < w.size(); ++i) wr[i] = bf16_to_f32(bf[i] = f32_to_bf16(w[i]));
  auto a = quantize(Tensor::contiguous(bf.data(), DType::kBF16, {n, k}), {QuantFormat::kNvFp4});
  auto b = quantize(wr.data(), n, k, {QuantFormat::kNvFp4});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(std::memcmp(a->data(), b->data(), a->data_bytes()), 0);
  EXPECT_EQ(std::memcmp(a->scales(), b->scales(), a->scale_bytes()), 0);
  EXPECT_EQ(a->global_scale(), b->global_scale());
  std::vector<int32_t> ints(size_t(n * k));
  EXPECT_EQ(
      quantize(Tensor::contiguous(ints.data(), DType::kI32, {n, k}), {QuantFormat::kInt8}).status().code(),
      StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace tidal
