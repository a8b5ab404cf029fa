#include <cmath>
#include <cstdio>
#include <vector>

#include "tidal/core/fp8.h"
#include "tidal/core/quantized_tensor.h"
#include "tidal/kernels/kernel_table.h"

namespace tidal {

const KernelTable& kernels_for(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512: return kernel_table_avx512();
    case CpuIsa::kAvx2: return kernel_table_avx2();
    case CpuIsa::kScalar: break;
  }
  return kernel_table_scalar();
}

namespace {

// Start-up self-check: the chosen table must agree with the portable scalar table on small
// problems covering every tile shape and k tail. A table that fails (a kernel bug on a CPU the
// test suite never ran on) is not used: we fall back one level and say so on stderr.
// The quantized kernels: every format (k = 37 and 64: tails, and several FP4 blocks per row) for
// m = 1..5 within a tolerance, and the W8A8 pair bit for bit (its contract is exact).
bool quant_agrees_with_scalar(const QuantKernelTable& t) {
  const QuantKernelTable& ref = kQuantKernelTableScalar;
  if (&t == &ref) return true;
  const int64_t n = 9;
  std::vector<float> x(size_t(5 * 64)), w(size_t(n * 64));
  uint32_t s = 777;
  auto next = [&] { s = s * 1664525u + 1013904223u; return float(int32_t(s >> 8) % 2001 - 1000) / 1000.0f; };
  for (auto& v : x) v = next();
  for (auto& v : w) v = next();
  for (int64_t k : {int64_t(37), int64_t(64)}) {
    std::vector<float> y(size_t(5 * n)), yr(y);
    for (int f = 0; f < kNumQuantFormats; ++f) {
      if (!t.matmul_for(QuantFormat(f))) continue;
      auto q = quantize(w.data(), n, k, {QuantFormat(f)});
      if (!q) return false;
      const QuantView v = q->view();
      for (int64_t m = 1; m <= 5; ++m) {
        t.matmul_for(QuantFormat(f))(x.data(), k, v, y.data(), n, m, 0, n);
        ref.matmul_for(QuantFormat(f))(x.data(), k, v, yr.data(), n, m, 0, n);
        for (int64_t i = 0; i < m * n; ++i) {
          if (!(std::fabs(y[size_t(i)] - yr[size_t(i)]) <= 1e-4f * (1.0f + std::fabs(yr[size_t(i)])))) return false;
        }
      }
    }
    auto q = quantize(w.data(), n, k, {QuantFormat::kInt8});
    if (!q) return false;
    std::vector<int8_t> xq(size_t(5 * k)), xqr(xq);
    std::vector<float> xs(5), xsr(5);
    t.quantize_rows_i8(x.data(), k, 5, k, xq.data(), k, xs.data());
    ref.quantize_rows_i8(x.data(), k, 5, k, xqr.data(), k, xsr.data());
    if (xq != xqr || xs != xsr) return false;
    t.matmul_i8_i8(xq.data(), k, xs.data(), q->view(), y.data(), n, 5, 0, n);
    ref.matmul_i8_i8(xq.data(), k, xs.data(), q->view(), yr.data(), n, 5, 0, n);
    if (y != yr) return false;
    for (QuantFormat f : {QuantFormat::kNvFp4, QuantFormat::kMxFp4}) {  // W4A8: within rounding
      if (!t.matmul_i8_for(f)) continue;
      auto q4 = quantize(w.data(), n, k, {f});
      if (!q4) return false;
      for (int64_t m = 1; m <= 5; ++m) {
        t.matmul_i8_for(f)(xq.data(), k, xs.data(), q4->view(), y.data(), n, m, 0, n);
        ref.matmul_i8_for(f)(xq.data(), k, xs.data(), q4->view(), yr.data(), n, m, 0, n);
        for (int64_t i = 0; i < m * n; ++i) {
          if (!(std::fabs(y[size_t(i)] - yr[size_t(i)]) <= 1e-4f * (1.0f + std::fabs(yr[size_t(i)])))) return false;
        }
      }
    }
  }
  return true;
}

bool agrees_with_scalar(const KernelTable& t) {
  const KernelTable& ref = kernel_table_scalar();
  // k = 37: the direct paths and their k tails; k = 64 with m >= 4: the blocked GEMM paths.
  const int64_t n = 9, k = 37, k_max = 64;
  std::vector<float> x(size_t(5 * k_max)), w32(size_t(n * k_max)), y(size_t(5 * n)), yr(size_t(5 * n));
  std::vector<uint16_t> w16(size_t(n * k_max));
  std::vector<uint8_t> w8(size_t(n * k_max));
  uint32_t s = 12345;
  auto next = [&] { s = s * 1664525u + 1013904223u; return float(int32_t(s >> 8) % 2001 - 1000) / 1000.0f; };
  for (auto& v : x) v = next();
  for (auto& v : w32) v = next();
  for (size_t i = 0; i < w16.size(); ++i) w16[i] = f32_to_bf16(w32[i]);
  for (size_t i = 0; i < w8.size(); ++i) w8[i] = f32_to_fp8_e4m3(w32[i] * 300.0f);  // subnormals to 300
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3}) {
    if (dt == DType::kF16) for (size_t i = 0; i < w16.size(); ++i) w16[i] = f32_to_f16(w32[i]);
    const void* w = dt == DType::kF32    ? static_cast<const void*>(w32.data())
                    : dt == DType::kF8E4M3 ? static_cast<const void*>(w8.data())
                                           : static_cast<const void*>(w16.data());
    for (int64_t kk : {k, k_max}) {
      for (int64_t m = 1; m <= 5; ++m) {
        t.matmul_for(dt)(x.data(), kk, w, kk, y.data(), n, m, kk, 0, n);
        ref.matmul_for(dt)(x.data(), kk, w, kk, yr.data(), n, m, kk, 0, n);
        for (int64_t i = 0; i < m * n; ++i) {
          if (!(std::fabs(y[size_t(i)] - yr[size_t(i)]) <= 1e-4f * (1.0f + std::fabs(yr[size_t(i)])))) return false;
        }
      }
    }
  }
  float a = t.dot(x.data(), w32.data(), k), ar = ref.dot(x.data(), w32.data(), k);
  if (!(std::fabs(a - ar) <= 1e-4f * (1.0f + std::fabs(ar)))) return false;
  std::vector<float> z(size_t(k), 1.0f), zr = z;
  t.axpy(0.5f, x.data(), z.data(), k);
  ref.axpy(0.5f, x.data(), zr.data(), k);
  for (int64_t i = 0; i < k; ++i) if (!(std::fabs(z[size_t(i)] - zr[size_t(i)]) <= 1e-5f)) return false;
  for (auto fn : {&KernelTable::axpy_f16, &KernelTable::axpy_bf16}) {
    std::vector<float> u(size_t(k), 1.0f), ur = u;
    (t.*fn)(0.25f, w16.data(), u.data(), k);
    (ref.*fn)(0.25f, w16.data(), ur.data(), k);
    for (int64_t i = 0; i < k; ++i) if (!(std::fabs(u[size_t(i)] - ur[size_t(i)]) <= 1e-5f)) return false;
  }
  {  // FP8 rows: 5 rows of k codes against x's first 5 values
    std::vector<float> u(size_t(k), 1.0f), ur = u;
    t.axpy_rows(DType::kF8E4M3, x.data(), w8.data(), k, 5, u.data(), k);
    ref.axpy_rows(DType::kF8E4M3, x.data(), w8.data(), k, 5, ur.data(), k);
    for (int64_t i = 0; i < k; ++i) if (!(std::fabs(u[size_t(i)] - ur[size_t(i)]) <= 1e-4f * (1.0f + std::fabs(ur[size_t(i)])))) return false;
  }
  {  // exp_sum and silu_mul compute the same operations in every table: equal bits expected
    const size_t nk = static_cast<size_t>(k);
    std::vector<float> e(nk), er(nk), g(nk), gr(nk);
    if (t.exp_sum(x.data(), 0.5f, e.data(), k) != ref.exp_sum(x.data(), 0.5f, er.data(), k) || e != er) return false;
    t.silu_mul(x.data(), w32.data(), g.data(), k);
    ref.silu_mul(x.data(), w32.data(), gr.data(), k);
    if (g != gr) return false;
  }
  return quant_agrees_with_scalar(*t.quant);
}

const KernelTable& choose_checked() {
  int level = int(cpu_isa());
  while (level > int(CpuIsa::kScalar)) {
    const KernelTable& t = kernels_for(CpuIsa(level));
    if (agrees_with_scalar(t)) return t;
    std::fprintf(stderr, "tidal: warning: %s kernels failed the start-up self-check; falling back\n", t.name);
    --level;
  }
  return kernel_table_scalar();
}

}  // namespace

const KernelTable& kernels() {
  static const KernelTable& table = choose_checked();
  return table;
}

bool kernel_table_self_check(CpuIsa isa) { return agrees_with_scalar(kernels_for(isa)); }

}  // namespace tidal
