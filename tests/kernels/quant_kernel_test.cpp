// The op-consistency harness for quantized weights: every quantized kernel table this CPU can run,
// for every format and scale granularity, against a double-precision product with the reference
// dequantization (QuantizedTensor::dequantize), and for batch invariance (a row's result must not
// depend on m or on the column range). The scalar table must equal "dequantize, then the scalar
// F32 matmul" bit for bit; the W8A8 kernels are exact integer arithmetic and must agree across
// tables bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tidal/core/quantized_tensor.h"
#include "tidal/kernels/kernel_table.h"
#include "tidal/kernels/quant_ops.h"

namespace tidal {
namespace {

std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> out = {CpuIsa::kScalar};
  if (cpu_features().best >= CpuIsa::kAvx2) out.push_back(CpuIsa::kAvx2);
  if (cpu_features().best >= CpuIsa::kAvx512) out.push_back(CpuIsa::kAvx512);
  return out;
}

std::vector<float> normal(int64_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& e : v) e = nd(rng);
  return v;
}

struct Scheme {
  const char* name;
  QuantOptions options;
};

// Every format, and the 8-bit ones with each granularity (1x16 blocks: many blocks per row).
std::vector<Scheme> schemes() {
  std::vector<Scheme> out;
  for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kFp8E4M3, QuantFormat::kFp8E5M2}) {
    out.push_back({"per_channel", {f, Granularity::kPerChannel}});
    out.push_back({"per_tensor", {f, Granularity::kPerTensor}});
    out.push_back({"block128", {f, Granularity::kBlock, 128, 128}});
    out.push_back({"block2x16", {f, Granularity::kBlock, 2, 16}});
  }
  out.push_back({"default", {QuantFormat::kNvFp4}});
  out.push_back({"default", {QuantFormat::kMxFp4}});
  return out;
}

class QuantKernelConsistency : public ::testing::TestWithParam<std::tuple<CpuIsa, int>> {};

TEST_P(QuantKernelConsistency, MatmulMatchesDequantizedReference) {
  const auto [isa, si] = GetParam();
  const Scheme s = schemes()[size_t(si)];
  const QuantKernelTable& qt = *kernels_for(isa).quant;
  const QuantMatmulFn fn = qt.matmul_for(s.options.format);
  ASSERT_NE(fn, nullptr);
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1},
                                                                           {1, 7, 5},
                                                                           {3, 5, 16},
                                                                           {4, 8, 17},
                                                                           {5, 9, 33},
                                                                           {7, 13, 64},
                                                                           {2, 4, 127},
                                                                           {9, 6, 300},
                                                                           {70, 5, 48},
                                                                           // whole 512-column groups (MXFP4) and a tail
                                                                           {5, 3, 1100},
                                                                           {1, 4, 2048}}) {
    const auto w = normal(n * k, uint32_t(n * 31 + k), 0.1f);
    const auto x = normal(m * k, uint32_t(m * 7 + k));
    auto q = quantize(w.data(), n, k, s.options);
    ASSERT_TRUE(q) << q.status().to_string();
    std::vector<float> wd(size_t(n * k)), y(size_t(m * n), NAN);
    q->dequantize(wd.data());
    fn(x.data(), k, q->view(), y.data(), n, m, 0, n);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < k; ++c) {
          ref += double(x[size_t(i * k + c)]) * wd[size_t(j * k + c)];
          mag += std::fabs(double(x[size_t(i * k + c)]) * wd[size_t(j * k + c)]);
        }
        ASSERT_NEAR(y[size_t(i * n + j)], ref, 1e-5 * mag + 1e-6)
            << qt.name << " " << quant_format_info(s.options.format).name << " " << s.name << " m=" << m
            << " n=" << n << " k=" << k << " at " << i << "," << j;
      }
    }
    if (isa == CpuIsa::kScalar) {
      // Bit-identical to dequantize + scalar F32 matmul.
      std::vector<float> yf(size_t(m * n));
      kernels_for(CpuIsa::kScalar).matmul_f32(x.data(), k, wd.data(), k, yf.data(), n, m, k, 0, n);
      for (size_t e = 0; e < y.size(); ++e) ASSERT_EQ(f32_bits(y[e]), f32_bits(yf[e])) << e;
    }
  }
}

TEST_P(QuantKernelConsistency, MatmulIsBatchInvariant) {
  const auto [isa, si] = GetParam();
  const Scheme s = schemes()[size_t(si)];
  const QuantMatmulFn fn = kernels_for(isa).quant->matmul_for(s.options.format);
  const int64_t n = 11, m_max = 9;
  for (int64_t k : {int64_t(77), int64_t(1100)}) {  // a tail alone; whole FP4 groups and a tail
    const auto w = normal(n * k, 5, 0.1f), x = normal(m_max * k, 6);
    auto q = quantize(w.data(), n, k, s.options);
    ASSERT_TRUE(q);
    const QuantView v = q->view();
    std::vector<float> single(size_t(m_max * n));
    for (int64_t i = 0; i < m_max; ++i) fn(x.data() + i * k, k, v, single.data() + i * n, n, 1, 0, n);
    for (int64_t m = 1; m <= m_max; ++m) {
      for (int64_t split : {int64_t(1), int64_t(3), int64_t(5)}) {
        std::vector<float> y(size_t(m * n));
        fn(x.data(), k, v, y.data(), n, m, 0, split);
        fn(x.data(), k, v, y.data(), n, m, split, n);
        for (int64_t e = 0; e < m * n; ++e) {
          ASSERT_EQ(f32_bits(y[size_t(e)]), f32_bits(single[size_t(e)]))
              << "k=" << k << " m=" << m << " split=" << split << " at " << e;
        }
      }
    }
  }
}

std::string name_of(const ::testing::TestParamInfo<std::tuple<CpuIsa, int>>& info) {
  const Scheme s = schemes()[size_t(std::get<1>(info.param))];
  return std::string(cpu_isa_name(std::get<0>(info.param))) + "_" + quant_format_info(s.options.format).name +
         "_" + s.name;
}

INSTANTIATE_TEST_SUITE_P(AllRunnable, QuantKernelConsistency,
                         ::testing::Combine(::testing::ValuesIn(runnable_isas()),
                                            ::testing::Range(0, int(schemes().size()))),
                         name_of);

class W8A8Kernels : public ::testing::TestWithParam<CpuIsa> {};

TEST_P(W8A8Kernels, ActivationQuantizationAndIntegerProductsAreExact) {
  const QuantKernelTable& qt = *kernels_for(GetParam()).quant;
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {1, 5, 31}, {1, 3, 200}, {3, 7, 32}, {4, 9, 33}, {7, 4, 100}, {5, 13, 257}, {9, 6, 640}}) {
    auto x = normal(m * k, uint32_t(k));
    if (m > 2)
      for (int64_t c = 0; c < k; ++c) x[size_t(2 * k + c)] = 0.0f;  // an all-zero row
    const auto w = normal(n * k, uint32_t(k + 1), 0.1f);
    auto q = quantize(w.data(), n, k, {QuantFormat::kInt8});
    ASSERT_TRUE(q);
    std::vector<int8_t> xq(size_t(m * k));
    std::vector<float> xs(static_cast<size_t>(m)), y(size_t(m * n));
    qt.quantize_rows_i8(x.data(), k, m, k, xq.data(), k, xs.data());
    for (int64_t i = 0; i < m; ++i) {
      float amax = 0;
      for (int64_t c = 0; c < k; ++c) amax = std::max(amax, std::fabs(x[size_t(i * k + c)]));
      ASSERT_EQ(xs[size_t(i)], amax / 127.0f);
      for (int64_t c = 0; c < k; ++c) {
        const float expect = amax > 0 ? std::nearbyint(x[size_t(i * k + c)] * (127.0f / amax)) : 0.0f;
        ASSERT_EQ(xq[size_t(i * k + c)], int8_t(std::clamp(expect, -127.0f, 127.0f)))
            << qt.name << " " << i << "," << c;
      }
    }
    qt.matmul_i8_i8(xq.data(), k, xs.data(), q->view(), y.data(), n, m, 0, n);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        int64_t acc = 0;
        for (int64_t c = 0; c < k; ++c) acc += int64_t(xq[size_t(i * k + c)]) * int8_t(q->data()[j * k + c]);
        float ws;
        std::memcpy(&ws, q->scales() + 4 * j, 4);
        ASSERT_EQ(f32_bits(y[size_t(i * n + j)]), f32_bits((float(acc) * xs[size_t(i)]) * ws)) << qt.name;
        // And close to the F32 product: per-token int8 activations cost ~1% here.
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < k; ++c) {
          ref += double(x[size_t(i * k + c)]) * w[size_t(j * k + c)];
          mag += std::fabs(double(x[size_t(i * k + c)]) * w[size_t(j * k + c)]);
        }
        ASSERT_NEAR(y[size_t(i * n + j)], ref, 0.03 * mag + 1e-6);
      }
    }
    // Batch invariance: row 0 alone equals row 0 in the batch.
    std::vector<float> y1(static_cast<size_t>(n));
    qt.matmul_i8_i8(xq.data(), k, xs.data(), q->view(), y1.data(), n, 1, 0, n);
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(f32_bits(y1[size_t(j)]), f32_bits(y[size_t(j)]));
  }
}

// The extreme integer sums: n_in = 2^17 (the contract's limit) with every code at +-127, so the
// exact dot products are +-127 * 127 * 2^17, next to the int32 limits (the AVX-512 VNNI kernel's
// biased intermediate sums exceed 2^31 here and must wrap back exactly).
TEST_P(W8A8Kernels, ExtremeCodesAtTheLargestInputWidthStayExact) {
  const QuantKernelTable& qt = *kernels_for(GetParam()).quant;
  const int64_t k = int64_t(1) << 17, n = 3, m = 2;
  std::vector<float> x(size_t(m * k)), w(size_t(n * k));
  for (int64_t c = 0; c < k; ++c) {
    x[size_t(c)] = 1.0f;                                      // row 0: +127 everywhere
    x[size_t(k + c)] = (c % 2) ? 2.0f : -2.0f;                // row 1: alternating +-127
    w[size_t(c)] = -0.5f;                                     // row 0: -127 everywhere
    w[size_t(k + c)] = 0.25f;                                 // row 1: +127 everywhere
    w[size_t(2 * k + c)] = (c % 2) ? -1.0f : 1.0f;            // row 2: alternating -+127
  }
  auto q = quantize(w.data(), n, k, {QuantFormat::kInt8});
  ASSERT_TRUE(q);
  std::vector<int8_t> xq(size_t(m * k));
  std::vector<float> xs(static_cast<size_t>(m)), y(static_cast<size_t>(m * n));
  qt.quantize_rows_i8(x.data(), k, m, k, xq.data(), k, xs.data());
  qt.matmul_i8_i8(xq.data(), k, xs.data(), q->view(), y.data(), n, m, 0, n);
  const double full = 127.0 * 127.0 * double(k);
  const double expect[2][3] = {{-full, full, 0.0}, {0.0, 0.0, -full}};
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float ws;
      std::memcpy(&ws, q->scales() + 4 * j, 4);
      ASSERT_EQ(f32_bits(y[size_t(i * n + j)]), f32_bits((float(expect[i][j]) * xs[size_t(i)]) * ws))
          << qt.name << " " << i << "," << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllRunnable, W8A8Kernels, ::testing::ValuesIn(runnable_isas()),
                         [](const auto& info) { return std::string(cpu_isa_name(info.param)); });

// W4A8: FP4 weights x int8 activations. The block sums are exact integers, so the result equals
// the product of the dequantized weights and the dequantized activations (xq * x_scale) up to F32
// rounding of the per-block terms; batch invariant bit for bit.
TEST_P(W8A8Kernels, Fp4WeightsInt8ActivationsMatchDequantizedProduct) {
  const QuantKernelTable& qt = *kernels_for(GetParam()).quant;
  for (QuantFormat f : {QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {
    const MatmulI8I8Fn fn = qt.matmul_i8_for(f);
    ASSERT_NE(fn, nullptr) << qt.name;
    for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 1, 1}, {1, 9, 31}, {1, 8, 64}, {3, 7, 48}, {4, 9, 33}, {7, 5, 100}, {5, 13, 257}, {2, 6, 2048},
             {9, 6, 1300}, {1, 3, 1040}}) {  // several scale groups (256 / 512 columns on avx512) + a tail
      const auto x = normal(m * k, uint32_t(k + 5));
      const auto w = normal(n * k, uint32_t(k + 6), 0.1f);
      auto q = quantize(w.data(), n, k, {f});
      ASSERT_TRUE(q);
      std::vector<float> wd(size_t(n * k));
      q->dequantize(wd.data());
      std::vector<int8_t> xq(size_t(m * k));
      std::vector<float> xs(static_cast<size_t>(m)), y(size_t(m * n));
      qt.quantize_rows_i8(x.data(), k, m, k, xq.data(), k, xs.data());
      fn(xq.data(), k, xs.data(), q->view(), y.data(), n, m, 0, n);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          double ref = 0, mag = 0, ref32 = 0, mag32 = 0;
          for (int64_t c = 0; c < k; ++c) {
            const double xd = double(xq[size_t(i * k + c)]) * xs[size_t(i)];
            ref += xd * wd[size_t(j * k + c)];
            mag += std::fabs(xd * wd[size_t(j * k + c)]);
            ref32 += double(x[size_t(i * k + c)]) * wd[size_t(j * k + c)];
            mag32 += std::fabs(double(x[size_t(i * k + c)]) * wd[size_t(j * k + c)]);
          }
          ASSERT_NEAR(y[size_t(i * n + j)], ref, 1e-5 * mag + 1e-6)
              << qt.name << " " << quant_format_info(f).name << " m=" << m << " n=" << n << " k=" << k;
          ASSERT_NEAR(y[size_t(i * n + j)], ref32, 0.03 * mag32 + 1e-6);  // per-token int8 activations
        }
      }
      // Batch invariance: each row alone, and columns split in two calls.
      for (int64_t i = 0; i < m; ++i) {
        std::vector<float> y1(static_cast<size_t>(n));
        const int64_t split = n / 3;
        fn(xq.data() + i * k, k, xs.data() + i, q->view(), y1.data(), n, 1, 0, split);
        fn(xq.data() + i * k, k, xs.data() + i, q->view(), y1.data(), n, 1, split, n);
        for (int64_t j = 0; j < n; ++j) {
          ASSERT_EQ(f32_bits(y1[size_t(j)]), f32_bits(y[size_t(i * n + j)])) << qt.name << " row " << i << " col " << j;
        }
      }
      // Activations prepared once (the path ops::quant_matmul takes): the same bits, whole and in
      // column ranges. The entries come all together or not at all.
      const MatmulI8I8Fn prepared = qt.matmul_i8_prepared_for(f);
      ASSERT_EQ(prepared != nullptr, qt.fp4_i8_row_bytes != nullptr) << qt.name;
      if (!prepared) continue;
      const int64_t ldp = qt.fp4_i8_row_bytes(k);
      ASSERT_GE(ldp, k);
      std::vector<int8_t> xp(size_t(m * ldp), int8_t(0x55));  // garbage where prepare writes nothing
      qt.prepare_fp4_i8(xq.data(), k, m, k, xp.data());
      std::vector<float> y2(y.size());
      const int64_t split = n / 2;
      prepared(xp.data(), ldp, xs.data(), q->view(), y2.data(), n, m, 0, split);
      prepared(xp.data(), ldp, xs.data(), q->view(), y2.data(), n, m, split, n);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_EQ(f32_bits(y2[i]), f32_bits(y[i])) << qt.name << " prepared, m=" << m << " k=" << k << " at " << i;
      }
    }
  }
}

// AVX-VNNI: the AVX2 kernels with one vpdpbusd for each int8 dot product. The integers are exact
// either way and the float steps are the same, so W8A8 and W4A8 give the AVX2 table's bits.
TEST(QuantKernelDispatch, AvxVnniTableGivesTheAvx2TablesBits) {
  if (!cpu_features().avx_vnni || cpu_features().best < CpuIsa::kAvx2) GTEST_SKIP() << "no AVX-VNNI";
  const QuantKernelTable& vnni = quant_kernel_table_avx2_vnni();
  const QuantKernelTable& plain = kQuantKernelTableAvx2;
  EXPECT_EQ(kernels_for(CpuIsa::kAvx2).quant, &vnni);  // the avx2 level uses it on this CPU
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 9, 31}, {4, 9, 33}, {7, 13, 257}, {3, 8, 2048}, {9, 6, 1300}}) {
    const auto x = normal(m * k, uint32_t(k + 7));
    const auto w = normal(n * k, uint32_t(k + 8), 0.1f);
    std::vector<int8_t> xq(size_t(m * k)), xq2(xq);
    std::vector<float> xs(static_cast<size_t>(m)), xs2(xs);
    plain.quantize_rows_i8(x.data(), k, m, k, xq.data(), k, xs.data());
    vnni.quantize_rows_i8(x.data(), k, m, k, xq2.data(), k, xs2.data());
    ASSERT_EQ(xq, xq2);
    ASSERT_EQ(xs, xs2);
    for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {
      auto q = quantize(w.data(), n, k, {f});
      ASSERT_TRUE(q);
      std::vector<float> y(size_t(m * n)), y2(y);
      plain.matmul_i8_for(f)(xq.data(), k, xs.data(), q->view(), y.data(), n, m, 0, n);
      vnni.matmul_i8_for(f)(xq.data(), k, xs.data(), q->view(), y2.data(), n, m, 0, n);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_EQ(f32_bits(y2[i]), f32_bits(y[i])) << quant_format_info(f).name << " m=" << m << " k=" << k << " at " << i;
      }
    }
  }
}

// On a CPU with AVX512-VBMI the avx512 level uses the table compiled with VBMI (vpermb FP4
// decode); it must give the VNNI table's bits for every entry that differs between them (the W4A8
// kernels, prepared and not, and the rest for good measure), and the VNNI table stays reachable.
TEST(QuantKernelDispatch, VbmiTableGivesTheVnniTablesBits) {
  const CpuFeatures& cf = cpu_features();
  if (cf.best < CpuIsa::kAvx512 || !cf.avx512_vnni || !cf.avx512_vbmi) GTEST_SKIP() << "no AVX512 VNNI + VBMI";
  const QuantKernelTable& vbmi = quant_kernel_table_avx512_vbmi();
  const QuantKernelTable& vnni = quant_kernel_table_avx512_vnni();
  EXPECT_EQ(kernels_for(CpuIsa::kAvx512).quant, &vbmi);
  EXPECT_STREQ(vbmi.name, "avx512_vbmi");
  EXPECT_STREQ(vnni.name, "avx512_vnni");
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 9, 31}, {4, 9, 33}, {7, 13, 257}, {3, 8, 2048}, {9, 6, 1300}, {65, 5, 600}}) {
    const auto x = normal(m * k, uint32_t(k + 17));
    const auto w = normal(n * k, uint32_t(k + 18), 0.1f);
    std::vector<int8_t> xq(size_t(m * k));
    std::vector<float> xs(static_cast<size_t>(m));
    vnni.quantize_rows_i8(x.data(), k, m, k, xq.data(), k, xs.data());
    const int64_t ldp = vnni.fp4_i8_row_bytes(k);
    ASSERT_EQ(vbmi.fp4_i8_row_bytes(k), ldp);
    std::vector<int8_t> xp(size_t(m * ldp)), xp2(xp);
    vnni.prepare_fp4_i8(xq.data(), k, m, k, xp.data());
    vbmi.prepare_fp4_i8(xq.data(), k, m, k, xp2.data());
    ASSERT_EQ(xp, xp2);
    for (QuantFormat f : {QuantFormat::kInt8, QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {
      auto q = quantize(w.data(), n, k, {f});
      ASSERT_TRUE(q);
      SCOPED_TRACE(std::string(quant_format_info(f).name) + " m=" + std::to_string(m) + " k=" + std::to_string(k));
      std::vector<float> y(size_t(m * n)), y2(y);
      vnni.matmul_i8_for(f)(xq.data(), k, xs.data(), q->view(), y.data(), n, m, 0, n);
      vbmi.matmul_i8_for(f)(xq.data(), k, xs.data(), q->view(), y2.data(), n, m, 0, n);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(f32_bits(y2[i]), f32_bits(y[i])) << "int8 activations at " << i;
      if (f != QuantFormat::kInt8) {
        vbmi.matmul_i8_prepared_for(f)(xp.data(), ldp, xs.data(), q->view(), y2.data(), n, m, 0, n);
        for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(f32_bits(y2[i]), f32_bits(y[i])) << "prepared at " << i;
      }
      vnni.matmul_for(f)(x.data(), k, q->view(), y.data(), n, m, 0, n);
      vbmi.matmul_for(f)(x.data(), k, q->view(), y2.data(), n, m, 0, n);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(f32_bits(y2[i]), f32_bits(y[i])) << "F32 activations at " << i;
    }
  }
}

// Row-interleaved storage (interleave_rows: each row's scale codes, padded, then its codes; how
// models hold FP4 weights) gives every kernel of every table this CPU can reach the bits of the
// canonical layout: W4A16, W4A8, W4A8 on prepared activations. A kernel that indexed rows by
// row_bytes or scale rows by n_scale_cols would read scale bytes as codes here.
TEST(QuantKernelLayout, InterleavedRowsGiveTheCanonicalBits) {
  std::vector<const QuantKernelTable*> tables;
  for (CpuIsa isa : runnable_isas()) tables.push_back(kernels_for(isa).quant);
  const CpuFeatures& cf = cpu_features();
  if (cf.best >= CpuIsa::kAvx2) tables.push_back(&kQuantKernelTableAvx2);
  if (cf.best >= CpuIsa::kAvx2 && cf.avx_vnni) tables.push_back(&quant_kernel_table_avx2_vnni());
  if (cf.best >= CpuIsa::kAvx512 && cf.avx512_vnni) tables.push_back(&quant_kernel_table_avx512_vnni());
  if (cf.best >= CpuIsa::kAvx512 && cf.avx512_vnni && cf.avx512_vbmi) {
    tables.push_back(&quant_kernel_table_avx512_vbmi());
  }
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 9, 31}, {1, 7, 2048}, {4, 9, 33}, {7, 13, 257}, {3, 8, 2048}, {9, 6, 1300}, {2, 5, 5632}}) {
    const auto x = normal(m * k, uint32_t(k + 27));
    const auto w = normal(n * k, uint32_t(k + 28), 0.1f);
    for (QuantFormat f : {QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {
      SCOPED_TRACE(std::string(quant_format_info(f).name) + " m=" + std::to_string(m) +
                   " n=" + std::to_string(n) + " k=" + std::to_string(k));
      auto q = quantize(w.data(), n, k, {f});
      ASSERT_TRUE(q);
      ASSERT_TRUE(q->canonical());
      QuantizedTensor copy = std::move(q).value();
      const QuantView cv = copy.view();
      std::vector<uint8_t> canon_data(cv.data, cv.data + copy.data_bytes());
      std::vector<uint8_t> canon_scales(static_cast<const uint8_t*>(cv.scales),
                                        static_cast<const uint8_t*>(cv.scales) + copy.scale_bytes());
      const float global = copy.global_scale();
      std::vector<float> wd(size_t(n * k)), wi(wd.size());
      copy.dequantize(wd.data());
      // Keep a canonical twin (interleave_rows consumes its argument).
      auto twin = QuantizedTensor::wrap(copy.layout(), canon_data.data(), canon_data.size(),
                                        canon_scales.data(), canon_scales.size(), global);
      ASSERT_TRUE(twin);
      const QuantizedTensor il = interleave_rows(std::move(copy));
      ASSERT_FALSE(il.canonical());
      EXPECT_EQ(il.data_stride() % 32, 0);
      EXPECT_EQ(il.data_stride(), il.scale_stride());
      EXPECT_GE(il.data_stride(), il.layout().row_bytes + il.layout().n_scale_cols);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(il.data()) % 32, 0u);
      il.dequantize(wi.data());
      ASSERT_EQ(wi, wd);
      std::vector<uint8_t> back_data(canon_data.size()), back_scales(canon_scales.size());
      il.copy_data(back_data.data());
      il.copy_scales(back_scales.data());
      EXPECT_EQ(back_data, canon_data);
      EXPECT_EQ(back_scales, canon_scales);

      const QuantView a = twin->view(), b = il.view();
      for (const QuantKernelTable* qt : tables) {
        SCOPED_TRACE(qt->name);
        std::vector<int8_t> xq(size_t(m * k));
        std::vector<float> xs(static_cast<size_t>(m)), y(size_t(m * n), NAN), y2(y);
        auto same = [&](const char* what) {
          for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(f32_bits(y2[i]), f32_bits(y[i])) << what << " at " << i;
        };
        qt->matmul_for(f)(x.data(), k, a, y.data(), n, m, 0, n);
        qt->matmul_for(f)(x.data(), k, b, y2.data(), n, m, 0, n);
        same("F32 activations");
        qt->quantize_rows_i8(x.data(), k, m, k, xq.data(), k, xs.data());
        qt->matmul_i8_for(f)(xq.data(), k, xs.data(), a, y.data(), n, m, 0, n);
        qt->matmul_i8_for(f)(xq.data(), k, xs.data(), b, y2.data(), n, m, 0, n);
        same("int8 activations");
        if (qt->fp4_i8_row_bytes) {
          const int64_t ldp = qt->fp4_i8_row_bytes(k);
          std::vector<int8_t> xp(size_t(m * ldp));
          qt->prepare_fp4_i8(xq.data(), k, m, k, xp.data());
          std::fill(y2.begin(), y2.end(), NAN);
          qt->matmul_i8_prepared_for(f)(xp.data(), ldp, xs.data(), b, y2.data(), n, m, 0, n / 2);
          qt->matmul_i8_prepared_for(f)(xp.data(), ldp, xs.data(), b, y2.data(), n, m, n / 2, n);
          same("prepared int8 activations");
        }
      }
    }
  }
  // Formats with F32 scales or blocks over several rows stay as they are.
  const auto w = normal(8 * 64, 3, 0.1f);
  for (QuantOptions o : {QuantOptions{QuantFormat::kInt8}, QuantOptions{QuantFormat::kFp8E4M3, Granularity::kBlock, 2, 16}}) {
    auto q = quantize(w.data(), 8, 64, o);
    ASSERT_TRUE(q);
    EXPECT_FALSE(QuantizedTensor::can_interleave_rows(q->layout()));
    const uint8_t* before = q->data();
    const QuantizedTensor same = interleave_rows(std::move(q).value());
    EXPECT_TRUE(same.canonical());
    EXPECT_EQ(same.data(), before);
  }
}

// ops::linear_swiglu (gate and up products and silu(gate) * up in one region) gives the bits of
// linear_many + silu_mul, for dense and quantized weights, F32 and int8 activations, decode and
// batch shapes, in place (out = gate) as the decoder calls it.
TEST(QuantOps, SwigluEqualsLinearManyThenSiluMul) {
  ThreadPool pool(2);
  const int64_t n = 200, k = 256;  // n not a multiple of the 16-column chunks
  const auto wg = normal(n * k, 10, 0.1f), wu = normal(n * k, 11, 0.1f);
  for (int64_t m : {1, 5, 64}) {
    const auto x = normal(m * k, 12);
    for (const char* fmt : {"f32", "int8", "nvfp4", "mxfp4"}) {
      for (ops::Activations act : {ops::Activations::kF32, ops::Activations::kInt8}) {
        SCOPED_TRACE(std::string(fmt) + " m=" + std::to_string(m) + (act == ops::Activations::kInt8 ? " a8" : ""));
        ops::LinearWeight g, u;
        Expected<QuantizedTensor> qg = invalid_argument("dense"), qu = invalid_argument("dense");
        if (std::string(fmt) == "f32") {
          g.dense = {wg.data(), DType::kF32, n, k};
          u.dense = {wu.data(), DType::kF32, n, k};
        } else {
          const QuantFormat f = std::string(fmt) == "int8" ? QuantFormat::kInt8
                                : std::string(fmt) == "nvfp4" ? QuantFormat::kNvFp4 : QuantFormat::kMxFp4;
          qg = quantize(wg.data(), n, k, {f});
          qu = quantize(wu.data(), n, k, {f});
          ASSERT_TRUE(qg && qu);
          g.quant = &*qg;
          u.quant = &*qu;
        }
        std::vector<float> gate(size_t(m * n)), up(gate), ref(gate);
        ops::linear_many(pool, x.data(), m, {{&g, gate.data()}, {&u, up.data()}}, act);
        ops::silu_mul(gate.data(), up.data(), ref.data(), m * n);
        std::vector<float> gate2(gate.size(), -1.0f), up2(gate.size(), -1.0f);
        ops::linear_swiglu(pool, x.data(), m, g, u, gate2.data(), up2.data(), gate2.data(), act);
        EXPECT_EQ(up2, up);
        for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(f32_bits(gate2[i]), f32_bits(ref[i])) << "at " << i;
      }
    }
  }
}

// ops::quant_matmul: threads split columns without changing a bit; zero points and formats
// without a kernel entry take the generic path, which matches the reference too.
TEST(QuantOps, ThreadedEqualsSingleCallAndGenericPathWorks) {
  ThreadPool pool(2);
  const int64_t m = 3, n = 96, k = 256;  // m * n * k >= 2^16: the pool is used
  const auto w = normal(n * k, 8, 0.1f), x = normal(m * k, 9);
  for (const QuantFormatInfo* info : quant_formats()) {
    auto q = quantize(w.data(), n, k, {info->format});
    ASSERT_TRUE(q);
    std::vector<float> y(size_t(m * n)), y1(y);
    ops::quant_matmul(pool, x.data(), m, *q, y.data());
    kernels().quant->matmul_for(info->format)(x.data(), k, q->view(), y1.data(), n, m, 0, n);
    EXPECT_EQ(y, y1) << info->name;
    EXPECT_TRUE(ops::quant_matmul_has_kernel(*q));
  }
  auto q = quantize(w.data(), n, k, {QuantFormat::kInt8});
  std::vector<float> y(size_t(m * n)), y1(y);
  ops::quant_matmul(pool, x.data(), m, *q, y.data(), ops::Activations::kInt8);
  const QuantKernelTable& qt = *kernels().quant;
  std::vector<int8_t> xq(size_t(m * k));
  std::vector<float> xs(static_cast<size_t>(m));
  qt.quantize_rows_i8(x.data(), k, m, k, xq.data(), k, xs.data());
  qt.matmul_i8_i8(xq.data(), k, xs.data(), q->view(), y1.data(), n, m, 0, n);
  EXPECT_EQ(y, y1);
  for (QuantFormat f : {QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {  // W4A8 through quant_matmul
    auto q4 = quantize(w.data(), n, k, {f});
    ASSERT_TRUE(q4);
    EXPECT_TRUE(ops::quant_matmul_has_kernel(*q4, ops::Activations::kInt8));
    ops::quant_matmul(pool, x.data(), m, *q4, y.data(), ops::Activations::kInt8);
    qt.matmul_i8_for(f)(xq.data(), k, xs.data(), q4->view(), y1.data(), n, m, 0, n);
    EXPECT_EQ(y, y1) << quant_format_info(f).name;
  }
  // Zero points: generic path, checked against the dequantized reference.
  QuantLayout l = q->layout();
  l.has_zero_points = true;
  std::vector<int8_t> zp(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) zp[size_t(j)] = int8_t(j % 5 - 2);
  auto z = QuantizedTensor::wrap(l, q->data(), q->data_bytes(), q->scales(), q->scale_bytes(), 1.0f,
                                 zp.data(), zp.size());
  ASSERT_TRUE(z) << z.status().to_string();
  EXPECT_FALSE(ops::quant_matmul_has_kernel(*z));
  ops::quant_matmul(pool, x.data(), m, *z, y.data());
  std::vector<float> wd(size_t(n * k));
  z->dequantize(wd.data());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (int64_t c = 0; c < k; ++c) {
        ref += double(x[size_t(i * k + c)]) * wd[size_t(j * k + c)];
        mag += std::fabs(double(x[size_t(i * k + c)]) * wd[size_t(j * k + c)]);
      }
      ASSERT_NEAR(y[size_t(i * n + j)], ref, 1e-5 * mag + 1e-6);
    }
  }
}

TEST(QuantKernelDispatch, SelfCheckCoversQuantizedKernels) {
  for (CpuIsa isa : runnable_isas()) {
    EXPECT_TRUE(kernel_table_self_check(isa)) << cpu_isa_name(isa);
    EXPECT_NE(kernels_for(isa).quant, nullptr);
  }
}

}  // namespace
}  // namespace tidal
