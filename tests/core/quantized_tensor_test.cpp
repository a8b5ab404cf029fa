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

// The FP4 encoders search each block's scale (docs/quantization.md). Whatever they pick, the codes
// must be the format's rounding of w / scale, and no block may end up with a larger squared error
// than the amax rule's scale gives (computed here from the element conversions, which fp8_test /
// fp4_test / e8m0_test check exhaustively).
struct Fp4BlockErrors {
  std::vector<double> chosen, rule;  // per block
  std::vector<uint8_t> chosen_scales, rule_scales;
};

Fp4BlockErrors fp4_block_errors(const std::vector<float>& w, int64_t n, int64_t k, QuantFormat f) {
  auto q = quantize(w.data(), n, k, {f});
  EXPECT_TRUE(q) << q.status().to_string();
  Fp4BlockErrors out;
  if (!q) return out;
  const bool nv = f == QuantFormat::kNvFp4;
  const QuantLayout& l = q->layout();
  float tensor_amax = 0.0f;
  for (float v : w) tensor_amax = std::max(tensor_amax, std::fabs(v));
  const float g = nv ? (tensor_amax > 0.0f ? tensor_amax / (6.0f * 448.0f) : 1.0f) : 1.0f;
  EXPECT_EQ(q->global_scale(), g);
  std::vector<float> d(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    q->dequantize_row(r, d.data());
    for (int64_t cb = 0; cb < l.n_scale_cols; ++cb) {
      const int64_t c0 = cb * l.block_cols, c1 = std::min(k, c0 + l.block_cols);
      float amax = 0.0f;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[size_t(r * k + c)]));
      const uint8_t code = q->scales()[r * l.n_scale_cols + cb];
      uint8_t rule;
      float rule_scale, chosen_scale;
      if (nv) {
        EXPECT_LE(code, kFp8E4M3MaxCode) << "block " << r << "," << cb;  // positive, finite
        rule = f32_to_fp8_e4m3(amax / (6.0f * g));
        rule_scale = fp8_e4m3_to_f32(rule);
        chosen_scale = fp8_e4m3_to_f32(code);
      } else {
        EXPECT_NE(code, kE8M0NanCode);
        rule = amax > 0.0f ? e8m0_from_exponent(std::ilogb(amax) - 2) : uint8_t(0);
        rule_scale = amax > 0.0f ? e8m0_to_f32(rule) : 0.0f;
        chosen_scale = amax > 0.0f ? e8m0_to_f32(code) : 0.0f;
      }
      if (amax == 0.0f) {
        EXPECT_EQ(code, rule);
      }
      double chosen_err = 0.0, rule_err = 0.0;
      for (int64_t c = c0; c < c1; ++c) {
        const float x = w[size_t(r * k + c)];
        const float s = chosen_scale * g, sr = rule_scale * g;
        const uint8_t qc = fp4_unpack(q->data()[r * l.row_bytes + c / 2], c);
        EXPECT_EQ(qc, f32_to_fp4_e2m1(s == 0.0f ? 0.0f : x / s)) << r << "," << c;
        EXPECT_EQ(d[size_t(c)], fp4_e2m1_to_f32(qc) * chosen_scale * g);
        const float dr = fp4_e2m1_to_f32(f32_to_fp4_e2m1(sr == 0.0f ? 0.0f : x / sr)) * rule_scale * g;
        chosen_err += (double(d[size_t(c)]) - x) * (double(d[size_t(c)]) - x);
        rule_err += (double(dr) - x) * (double(dr) - x);
      }
      out.chosen.push_back(chosen_err);
      out.rule.push_back(rule_err);
      out.chosen_scales.push_back(code);
      out.rule_scales.push_back(rule);
    }
  }
  return out;
}

double sum(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}

TEST(QuantizedTensorTest, Fp4ScaleSearchNeverIncreasesABlocksError) {
  // Random blocks: Gaussian, heavy-tailed (Student t, 3 degrees of freedom), uniform; 50 columns
  // (partial last blocks for both formats).
  const int64_t n = 48, k = 50;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::student_t_distribution<float> td(3.0f);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> w(size_t(n * k));
  for (size_t i = 0; i < w.size(); ++i) w[i] = i < w.size() / 3 ? nd(rng) : i < 2 * w.size() / 3 ? td(rng) : ud(rng);
  for (QuantFormat f : {QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {
    const auto e = fp4_block_errors(w, n, k, f);
    ASSERT_FALSE(e.chosen.empty());
    for (size_t b = 0; b < e.chosen.size(); ++b) EXPECT_LE(e.chosen[b], e.rule[b]) << "block " << b;
    // The search pays off on the whole (Gaussian weights, bench/quant_weight_mse.py: nvfp4 0.73x,
    // mxfp4 0.94x the rule's squared error).
    EXPECT_LT(sum(e.chosen), (f == QuantFormat::kNvFp4 ? 0.85 : 0.98) * sum(e.rule));
  }
}

TEST(QuantizedTensorTest, Fp4ScaleSearchOnAdversarialBlocks) {
  const int64_t k = 32;  // two NVFP4 blocks, one MXFP4 block per row
  std::vector<std::vector<float>> rows;
  rows.push_back(std::vector<float>(static_cast<size_t>(k), 0.0f));  // all zero
  {
    std::vector<float> r(static_cast<size_t>(k), 1e-3f);  // one outlier among tiny values
    r[3] = -1000.0f;
    r[20] = 1000.0f;
    rows.push_back(r);
  }
  rows.push_back({});  // row 2: exactly representable with the rule's scales (set per format below)
  {
    std::vector<float> r(static_cast<size_t>(k), 0.0f);  // values on E2M1 midpoints under the rule's scale
    const float vals[] = {6, 0.25f, 0.75f, 1.25f, -1.75f, 2.5f, -3.5f, 5};
    for (int64_t c = 0; c < k; ++c) r[size_t(c)] = vals[c % 8];
    rows.push_back(r);
  }
  rows.push_back(std::vector<float>(static_cast<size_t>(k), -0.3f));  // constant
  {
    // NVFP4 block scales (in the whole tensor below) in E4M3's subnormal range (t < 2^-6) and below
    // its smallest value (t < 2^-10: the rule gives scale 0).
    std::vector<float> r(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c)
      r[size_t(c)] = (c % 2 ? -1.0f : 1.0f) * (c < 16 ? 0.02f : 0.0007f) * (1.0f + 0.1f * float(c % 5));
    rows.push_back(r);
  }
  {
    std::vector<float> r(static_cast<size_t>(k));  // near FLT_MIN and E8M0's floor (2^-127)
    for (int64_t c = 0; c < k; ++c) r[size_t(c)] = std::ldexp(1.0f + 0.03f * float(c), -126) * (c % 3 ? 1 : -1);
    rows.push_back(r);
  }
  for (QuantFormat f : {QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {
    // Row 2: E2M1 values times the rule's scales, exact in F32: NVFP4 amax 6 * 448 * 2^-10 gives
    // global 2^-10 and block scales 448 and 112 (the second block a quarter of the first); MXFP4
    // amax 3 gives 2^-1.
    const float vals[] = {6, -4, 3, 2, -1.5f, 1, 0.5f, 0};
    rows[2].assign(static_cast<size_t>(k), 0.0f);
    for (int64_t c = 0; c < k; ++c)
      rows[2][size_t(c)] = vals[c % 8] * (f == QuantFormat::kNvFp4 ? (c < 16 ? 0.4375f : 0.109375f) : 0.5f);
    // Each row alone (its own NVFP4 global scale), then all rows as one tensor, whose amax (1000)
    // sets the global scale.
    std::vector<float> all;
    for (size_t i = 0; i < rows.size(); ++i) {
      all.insert(all.end(), rows[i].begin(), rows[i].end());
      const auto e = fp4_block_errors(rows[i], 1, k, f);
      for (size_t b = 0; b < e.chosen.size(); ++b) EXPECT_LE(e.chosen[b], e.rule[b]) << "row " << i << " block " << b;
      if (i == 0 || i == 2) {
        // All zero, and exactly representable: error 0 with the rule's scale, which is kept (ties).
        for (size_t b = 0; b < e.chosen.size(); ++b) {
          EXPECT_EQ(e.chosen[b], 0.0) << "row " << i << " block " << b;
          EXPECT_EQ(e.chosen_scales[b], e.rule_scales[b]) << "row " << i << " block " << b;
        }
      }
    }
    const auto e = fp4_block_errors(all, int64_t(rows.size()), k, f);
    ASSERT_EQ(e.chosen.size(), rows.size() * (f == QuantFormat::kNvFp4 ? 2 : 1));
    for (size_t b = 0; b < e.chosen.size(); ++b) EXPECT_LE(e.chosen[b], e.rule[b]) << "block " << b;
    if (f == QuantFormat::kNvFp4) {
      // Row 5's second block has t < 2^-10, so the rule's scale is 0 (every value lost); the
      // search's smallest subnormal scale keeps them.
      EXPECT_EQ(e.rule_scales[11], 0);
      EXPECT_NE(e.chosen_scales[11], 0);
      EXPECT_LT(e.chosen[11], 0.1 * e.rule[11]);
    }
  }
  // Non-finite weights are rejected before any scale is chosen, naming the element.
  std::vector<float> w = rows[1];
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    w[17] = bad;
    for (QuantFormat f : {QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {
      auto q = quantize(w.data(), 1, k, {f});
      ASSERT_FALSE(q);
      EXPECT_NE(q.status().message().find("[0, 17]"), std::string::npos) << q.status().message();
    }
  }
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
