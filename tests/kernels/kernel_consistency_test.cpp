// The op-consistency harness: every kernel table this CPU can run is checked against a plain
// double-precision reference, and for batch invariance (a row's result must not depend on the
// batch it is computed in or on the column range a thread is given).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tidal/core/fp8.h"
#include "tidal/kernels/kernel_table.h"

namespace tidal {
namespace {

std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> out = {CpuIsa::kScalar};
  if (cpu_features().best >= CpuIsa::kAvx2) out.push_back(CpuIsa::kAvx2);
  if (cpu_features().best >= CpuIsa::kAvx512) out.push_back(CpuIsa::kAvx512);
  return out;
}

struct Problem {
  int64_t m, n, k;
  std::vector<float> x;
  std::vector<uint16_t> w16;
  std::vector<float> w32;
  std::vector<uint8_t> w8;  // FP8 E4M3 codes
  std::vector<double> wd;  // the weights as the kernel sees them (after 16-bit rounding / decoding)
};

// A random finite FP8 E4M3 code: every code but the two NaNs (0x7f, 0xff) is equally likely, so
// subnormals, zeros of both signs and +-448 all occur.
uint8_t random_e4m3(std::mt19937& rng) {
  for (;;) {
    const uint8_t c = uint8_t(rng() & 0xffu);
    if ((c & 0x7fu) != 0x7fu) return c;
  }
}

Problem make_problem(int64_t m, int64_t n, int64_t k, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Problem p{m, n, k, {}, {}, {}, {}, {}};
  p.x.resize(size_t(m * k));
  for (auto& v : p.x) v = nd(rng);
  p.wd.resize(size_t(n * k));
  if (dt == DType::kF8E4M3) {
    p.w8.resize(size_t(n * k));
    for (size_t i = 0; i < p.w8.size(); ++i) p.wd[i] = fp8_e4m3_to_f32(p.w8[i] = random_e4m3(rng));
  } else if (dt == DType::kF32) {
    p.w32.resize(size_t(n * k));
    for (size_t i = 0; i < p.w32.size(); ++i) p.wd[i] = p.w32[i] = nd(rng);
  } else {
    p.w16.resize(size_t(n * k));
    for (size_t i = 0; i < p.w16.size(); ++i) {
      const float f = nd(rng);
      p.w16[i] = dt == DType::kF16 ? f32_to_f16(f) : f32_to_bf16(f);
      p.wd[i] = dt == DType::kF16 ? f16_to_f32(p.w16[i]) : bf16_to_f32(p.w16[i]);
    }
  }
  return p;
}

const void* weights(const Problem& p) {
  if (!p.w8.empty()) return p.w8.data();
  return p.w32.empty() ? static_cast<const void*>(p.w16.data()) : static_cast<const void*>(p.w32.data());
}

// FP8 codes are decoded exactly and then go through the same instructions as F32 weights, so the
// E4M3 matmul equals the F32 matmul on the decoded values bit for bit, in every table.
TEST(KernelConsistencyE4M3, MatmulEqualsF32OnDecodedValues) {
  for (CpuIsa isa : runnable_isas()) {
    const KernelTable& kt = kernels_for(isa);
    for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 16, 64}, {4, 16, 64}, {16, 16, 128},
                                                                             {3, 7, 37}, {9, 30, 520}}) {
      Problem p = make_problem(m, n, k, DType::kF8E4M3, uint32_t(m + n + k));
      std::vector<float> w32(p.wd.begin(), p.wd.end());
      std::vector<float> y8(size_t(m * n)), y32(size_t(m * n));
      kt.matmul_for(DType::kF8E4M3)(p.x.data(), k, p.w8.data(), k, y8.data(), n, m, k, 0, n);
      kt.matmul_for(DType::kF32)(p.x.data(), k, w32.data(), k, y32.data(), n, m, k, 0, n);
      for (size_t i = 0; i < y8.size(); ++i) {
        ASSERT_EQ(f32_bits(y8[i]), f32_bits(y32[i])) << kt.name << " m=" << m << " n=" << n << " k=" << k << " at " << i;
      }
    }
  }
}

class KernelConsistency : public ::testing::TestWithParam<std::tuple<CpuIsa, DType>> {};

TEST_P(KernelConsistency, MatmulMatchesReference) {
  const auto [isa, dt] = GetParam();
  const KernelTable& kt = kernels_for(isa);
  for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1},
                                                                           {1, 7, 5},
                                                                           {3, 5, 16},
                                                                           {4, 8, 17},
                                                                           {5, 9, 33},
                                                                           {7, 13, 64},
                                                                           {9, 4, 127},
                                                                           {70, 11, 200},
                                                                           {6, 29, 264},
                                                                           {67, 50, 520}}) {
    Problem p = make_problem(m, n, k, dt, uint32_t(m * 1000 + n * 10 + k));
    std::vector<float> y(size_t(m * n), NAN);
    kt.matmul_for(dt)(p.x.data(), k, weights(p), k, y.data(), n, m, k, 0, n);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double ref = 0, mag = 0;
        for (int64_t q = 0; q < k; ++q) {
          ref += double(p.x[size_t(i * k + q)]) * p.wd[size_t(j * k + q)];
          mag += std::fabs(double(p.x[size_t(i * k + q)]) * p.wd[size_t(j * k + q)]);
        }
        ASSERT_NEAR(y[size_t(i * n + j)], ref, 1e-5 * mag + 1e-6)
            << kt.name << " " << dtype_name(dt) << " m=" << m << " n=" << n << " k=" << k << " at " << i
            << "," << j;
      }
    }
  }
}

TEST_P(KernelConsistency, MatmulIsBatchInvariant) {
  const auto [isa, dt] = GetParam();
  const KernelTable& kt = kernels_for(isa);
  // k = 77 exercises the padded k tail; k = 520 (> one 512-value panel, whole 8-value steps: the
  // AVX2 blocked path) and m up to 70 / n = 53 exercise the blocked path for m >= 4 (row blocks of
  // 64, panels of 24 columns); k = 1040 (whole 16-value steps, three panels) the AVX-512 one too.
  for (auto [n, k, m_max] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{11, 77, 9}, {53, 520, 70}, {29, 1040, 13}}) {
    Problem p = make_problem(m_max, n, k, dt, 42);
    // Reference: each row alone, all columns at once.
    std::vector<float> single(size_t(m_max * n));
    for (int64_t i = 0; i < m_max; ++i) {
      kt.matmul_for(dt)(p.x.data() + i * k, k, weights(p), k, single.data() + i * n, n, 1, k, 0, n);
    }
    for (int64_t m = 1; m <= m_max; ++m) {
      for (int64_t split :
           {int64_t(1), int64_t(3), int64_t(5)}) {  // columns computed as [0,split) + [split,n)
        std::vector<float> y(size_t(m * n));
        kt.matmul_for(dt)(p.x.data(), k, weights(p), k, y.data(), n, m, k, 0, split);
        kt.matmul_for(dt)(p.x.data(), k, weights(p), k, y.data(), n, m, k, split, n);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            ASSERT_EQ(f32_bits(y[size_t(i * n + j)]), f32_bits(single[size_t(i * n + j)]))
                << kt.name << " m=" << m << " k=" << k << " split=" << split << " at " << i << "," << j;
          }
        }
      }
    }
  }
}

class VectorKernels : public ::testing::TestWithParam<CpuIsa> {};

TEST_P(VectorKernels, DotAndAxpy) {
  const KernelTable& kt = kernels_for(GetParam());
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (int64_t n : {1, 5, 16, 17, 64, 100}) {
    std::vector<float> a(static_cast<size_t>(n)), b(a), y(a);
    for (int64_t i = 0; i < n; ++i) {
      a[size_t(i)] = nd(rng);
      b[size_t(i)] = nd(rng);
      y[size_t(i)] = nd(rng);
    }
    double ref = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      ref += double(a[size_t(i)]) * b[size_t(i)];
      mag += std::fabs(double(a[size_t(i)]) * b[size_t(i)]);
    }
    EXPECT_NEAR(kt.dot(a.data(), b.data(), n), ref, 1e-5 * mag + 1e-6) << kt.name << " n=" << n;
    std::vector<float> y2 = y;
    kt.axpy(0.5f, a.data(), y2.data(), n);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(y2[size_t(i)], y[size_t(i)] + 0.5 * a[size_t(i)], 1e-5) << kt.name;
    std::vector<uint16_t> h(static_cast<size_t>(n)), bh(h);
    for (int64_t i = 0; i < n; ++i) {
      h[size_t(i)] = f32_to_f16(a[size_t(i)]);
      bh[size_t(i)] = f32_to_bf16(a[size_t(i)]);
    }
    std::vector<float> y3 = y, y4 = y;
    kt.axpy_f16(-2.0f, h.data(), y3.data(), n);
    kt.axpy_bf16(-2.0f, bh.data(), y4.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_NEAR(y3[size_t(i)], y[size_t(i)] - 2.0 * f16_to_f32(h[size_t(i)]), 1e-5) << kt.name;
      EXPECT_NEAR(y4[size_t(i)], y[size_t(i)] - 2.0 * bf16_to_f32(bh[size_t(i)]), 1e-5) << kt.name;
    }
  }
}

// Units in the last place between a float and the exact value (in double).
double ulps(float got, double want) {
  const float w = float(want);
  const double ulp = double(std::nextafter(std::fabs(w), INFINITY)) - std::fabs(w);
  return std::fabs(double(got) - want) / ulp;
}

// exp_sum: within 2 ulp of exp, 0 below the cut, the documented lane-order sum, the same bits
// as the scalar table, every tail length, and out may alias x.
TEST_P(VectorKernels, ExpSum) {
  const KernelTable& kt = kernels_for(GetParam());
  const KernelTable& ref = kernel_table_scalar();
  std::vector<float> x;
  for (double d = -87.0; d <= 88.0; d += 0.0137) x.push_back(float(d));
  for (float d : {0.0f, -0.0f, 1e-30f, -1e-30f, -86.99f, -87.0f, 88.0f, 0.5f, -0.5f}) x.push_back(d);
  std::vector<float> out(x.size()), out_ref(x.size());
  const double sum = kt.exp_sum(x.data(), 0.0f, out.data(), int64_t(x.size()));
  const double sum_ref = ref.exp_sum(x.data(), 0.0f, out_ref.data(), int64_t(x.size()));
  double worst = 0, lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < x.size(); ++i) {
    worst = std::max(worst, ulps(out[i], std::exp(double(x[i]))));
    lane[i % 8] += double(out[i]);
    ASSERT_EQ(out[i], out_ref[i]) << kt.name << " x=" << x[i];
  }
  EXPECT_LE(worst, 2.0) << kt.name;
  EXPECT_EQ(sum, ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]))) << kt.name;
  EXPECT_EQ(sum, sum_ref) << kt.name;
  // Below the cut (and far below): exactly 0; the shift is applied before.
  std::vector<float> low = {-87.01f, -100.0f, -1e30f, -INFINITY, 12.0f}, lo(low.size());
  EXPECT_EQ(kt.exp_sum(low.data(), 100.0f, lo.data(), int64_t(low.size())), 0.0) << kt.name;
  for (float v : lo) EXPECT_EQ(v, 0.0f) << kt.name;
  // Every tail length, in place, against the scalar table; an element's value does not depend on n.
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  std::vector<float> base(41);
  for (auto& v : base) v = nd(rng);
  for (int64_t n = 0; n <= 41; ++n) {
    std::vector<float> a(base.begin(), base.begin() + n), b(static_cast<size_t>(n));
    const double s1 = kt.exp_sum(a.data(), 3.0f, a.data(), n);
    const double s2 = ref.exp_sum(base.data(), 3.0f, b.data(), n);
    EXPECT_EQ(s1, s2) << kt.name << " n=" << n;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(a[size_t(i)], b[size_t(i)]) << kt.name << " n=" << n;
      float alone;
      kt.exp_sum(&base[size_t(i)], 3.0f, &alone, 1);
      EXPECT_EQ(a[size_t(i)], alone) << kt.name << " n=" << n;
    }
  }
}

// silu_mul: close to g * sigmoid(g) * u in double, the scalar table's bits, finite at the extremes,
// the same value whatever n (tails) and in place.
TEST_P(VectorKernels, SiluMul) {
  const KernelTable& kt = kernels_for(GetParam());
  const KernelTable& ref = kernel_table_scalar();
  std::vector<float> g, u;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int i = 0; i < 2000; ++i) {
    g.push_back(nd(rng));
    u.push_back(nd(rng));
  }
  for (float e : {0.0f, -0.0f, 87.9f, 88.5f, 100.0f, -87.9f, -88.5f, -100.0f, 1e30f, -1e30f}) {
    g.push_back(e);
    u.push_back(1.5f);
  }
  const int64_t n = int64_t(g.size());
  std::vector<float> out(g.size()), out_ref(g.size());
  kt.silu_mul(g.data(), u.data(), out.data(), n);
  ref.silu_mul(g.data(), u.data(), out_ref.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const double gd = g[size_t(i)], want = gd / (1.0 + std::exp(-gd)) * u[size_t(i)];
    ASSERT_EQ(out[size_t(i)], out_ref[size_t(i)]) << kt.name << " g=" << gd;
    ASSERT_TRUE(std::isfinite(out[size_t(i)])) << kt.name << " g=" << gd;
    EXPECT_NEAR(out[size_t(i)], want, 4e-7 * std::fabs(want) + 1e-30) << kt.name << " g=" << gd;
  }
  for (int64_t m = 0; m <= 19; ++m) {
    std::vector<float> a(g.begin(), g.begin() + m);
    kt.silu_mul(a.data(), u.data(), a.data(), m);  // in place
    for (int64_t i = 0; i < m; ++i) EXPECT_EQ(a[size_t(i)], out[size_t(i)]) << kt.name << " n=" << m;
  }
}

// axpy_rows must be exactly one axpy per row, in row order (attention's P x V relies on it to
// keep a token's output independent of how its positions are grouped).
TEST_P(VectorKernels, AxpyRowsIsAxpyPerRow) {
  const KernelTable& kt = kernels_for(GetParam());
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (int64_t n : {1, 7, 8, 40, 64, 100, 128}) {
    for (int64_t rows : {1, 3, 16}) {
      const int64_t ldv = n + 5;
      std::vector<float> a(static_cast<size_t>(rows)), v32(static_cast<size_t>(rows * ldv)), y(static_cast<size_t>(n));
      for (auto& e : a) e = nd(rng);
      for (auto& e : v32) e = nd(rng);
      for (auto& e : y) e = nd(rng);
      std::vector<uint16_t> v16(v32.size()), vb16(v32.size());
      std::vector<uint8_t> v8(v32.size());
      std::vector<float> v8_decoded(v32.size());
      for (size_t i = 0; i < v32.size(); ++i) {
        v16[i] = f32_to_f16(v32[i]);
        vb16[i] = f32_to_bf16(v32[i]);
        v8_decoded[i] = fp8_e4m3_to_f32(v8[i] = random_e4m3(rng));
      }
      for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
        std::vector<float> want = y, got = y;
        for (int64_t r = 0; r < rows; ++r) {
          if (dt == DType::kF32) kt.axpy(a[size_t(r)], v32.data() + r * ldv, want.data(), n);
          if (dt == DType::kF16) kt.axpy_f16(a[size_t(r)], v16.data() + r * ldv, want.data(), n);
          if (dt == DType::kBF16) kt.axpy_bf16(a[size_t(r)], vb16.data() + r * ldv, want.data(), n);
        }
        const void* v = dt == DType::kF32 ? static_cast<const void*>(v32.data())
                        : dt == DType::kF16 ? static_cast<const void*>(v16.data())
                                            : static_cast<const void*>(vb16.data());
        kt.axpy_rows(dt, a.data(), v, ldv, rows, got.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(f32_bits(got[size_t(i)]), f32_bits(want[size_t(i)]))
              << kt.name << " " << dtype_name(dt) << " n=" << n << " rows=" << rows << " at " << i;
        }
      }
      // FP8 E4M3 rows (the FP8 KV cache): exactly axpy_rows over the decoded F32 values.
      std::vector<float> want = y, got = y;
      kt.axpy_rows(DType::kF32, a.data(), v8_decoded.data(), ldv, rows, want.data(), n);
      kt.axpy_rows(DType::kF8E4M3, a.data(), v8.data(), ldv, rows, got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(f32_bits(got[size_t(i)]), f32_bits(want[size_t(i)]))
            << kt.name << " F8_E4M3 n=" << n << " rows=" << rows << " at " << i;
      }
    }
  }
}

std::string name_of(const ::testing::TestParamInfo<std::tuple<CpuIsa, DType>>& info) {
  return std::string(cpu_isa_name(std::get<0>(info.param))) + "_" + dtype_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllRunnable, KernelConsistency,
                         ::testing::Combine(::testing::ValuesIn(runnable_isas()),
                                            ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3)),
                         name_of);

INSTANTIATE_TEST_SUITE_P(AllRunnable, VectorKernels, ::testing::ValuesIn(runnable_isas()),
                         [](const auto& info) { return std::string(cpu_isa_name(info.param)); });

TEST(KernelDispatch, SelfCheckPassesOnEveryRunnableLevel) {
  for (CpuIsa isa : runnable_isas()) EXPECT_TRUE(kernel_table_self_check(isa)) << cpu_isa_name(isa);
}

TEST(KernelDispatch, ForcedLevelIsUsed) {
  // TIDAL_CPU (set by the test command for the portable passes) must be honoured.
  const char* env = std::getenv("TIDAL_CPU");
  if (env && std::string(env) == "avx2" && cpu_features().best >= CpuIsa::kAvx2) {
    EXPECT_STREQ(kernels().name, "avx2");
  } else if (env && std::string(env) == "scalar") {
    EXPECT_STREQ(kernels().name, "scalar");
  } else if (!env) {
    EXPECT_STREQ(kernels().name, cpu_isa_name(cpu_features().best));
  }
}

}  // namespace
}  // namespace tidal
