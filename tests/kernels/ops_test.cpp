#include "tidal/kernels/ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace tidal::ops {
namespace {

TEST(OpsTest, RmsNorm) {
  std::vector<float> x = {1, 2, 3, 4}, w = {1, 0.5f, 2, 1}, out(4);
  rms_norm(x.data(), w.data(), 0.0f, out.data(), 1, 4);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(out[size_t(i)], x[size_t(i)] / rms * w[size_t(i)], 1e-6);
}

TEST(OpsTest, RopeRotatesHalvesAndKeepsNorm) {
  const int hd = 8;
  std::vector<float> inv = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<float> v = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> r = v;
  rope(r.data(), 1, hd, 3, inv.data());
  for (int i = 0; i < 4; ++i) {
    const double a = 3.0 * inv[size_t(i)];
    EXPECT_NEAR(r[size_t(i)], v[size_t(i)] * std::cos(a) - v[size_t(i + 4)] * std::sin(a), 1e-5);
    EXPECT_NEAR(r[size_t(i + 4)], v[size_t(i + 4)] * std::cos(a) + v[size_t(i)] * std::sin(a), 1e-5);
  }
  std::vector<float> z = v;
  rope(z.data(), 1, hd, 0, inv.data());
  EXPECT_EQ(z, v);  // position 0 is the identity
}

TEST(OpsTest, SoftmaxAndLogSoftmaxAgree) {
  std::vector<float> x = {1000.0f, 999.0f, -5.0f, 0.0f};  // large values: must not overflow
  std::vector<float> p = x, lp(4);
  softmax(p.data(), 4);
  log_softmax(x.data(), lp.data(), 4);
  double sum = 0;
  for (int i = 0; i < 4; ++i) {
    sum += p[size_t(i)];
    EXPECT_NEAR(std::exp(double(lp[size_t(i)])), p[size_t(i)], 1e-6);
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

TEST(OpsTest, SiluMul) {
  std::vector<float> g = {-2, 0, 3}, u = {1, 5, 2}, o(3);
  silu_mul(g.data(), u.data(), o.data(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(o[size_t(i)], g[size_t(i)] / (1 + std::exp(-g[size_t(i)])) * u[size_t(i)], 1e-6);
  }
}

TEST(OpsTest, ThreadedMatmulEqualsSingleThreaded) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  const int64_t m = 5, n = 300, k = 96;
  std::vector<float> x(size_t(m * k)), w(size_t(n * k)), y1(size_t(m * n)), y4(size_t(m * n));
  for (auto& v : x) v = nd(rng);
  for (auto& v : w) v = nd(rng);
  Weight wt{w.data(), DType::kF32, n, k};
  ThreadPool p1(1), p4(4);
  matmul(p1, x.data(), m, wt, y1.data());
  matmul(p4, x.data(), m, wt, y4.data());
  EXPECT_EQ(y1, y4);  // bit-identical: threads split columns, never a dot product
}

}  // namespace
}  // namespace tidal::ops
