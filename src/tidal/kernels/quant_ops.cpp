#include "tidal/kernels/quant_ops.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <utility>
#include <vector>

#include "tidal/kernels/kernel_table.h"

namespace tidal::ops {
namespace {

// The int8-activation kernel for `w`: int8 with one scale per row (W8A8), NVFP4 / MXFP4 (W4A8);
// nullptr for anything else (those run with F32 activations whatever was asked).
MatmulI8I8Fn int8_activation_kernel(const QuantKernelTable& qt, const QuantizedTensor& w) {
  const QuantLayout& l = w.layout();
  if (w.zero_points()) return nullptr;
  if (l.format == QuantFormat::kInt8 && !(l.block_rows == 1 && l.block_cols == l.n_in)) return nullptr;
  return qt.matmul_i8_for(l.format);
}

// Generic path for columns [j0, j1): dequantize kRows rows of W at a time, then the F32 kernel.
void generic_matmul(const KernelTable& kt, const float* x, int64_t m, const QuantizedTensor& w, float* y,
                    int64_t j0, int64_t j1) {
  constexpr int64_t kRows = 16;
  const int64_t k = w.n_in(), n = w.n_out();
  thread_local std::vector<float> buf;
  buf.resize(size_t(kRows * k));
  for (int64_t j = j0; j < j1; j += kRows) {
    const int64_t nb = std::min(kRows, j1 - j);
    for (int64_t r = 0; r < nb; ++r) w.dequantize_row(j + r, buf.data() + r * k);
    kt.matmul_f32(x, k, buf.data(), k, y + j, n, m, k, 0, nb);
  }
}

// Per-token int8 quantization of x's m rows (row-independent, so spreading rows over the pool for
// batches gives the same bits).
void quantize_activations(ThreadPool& pool, const QuantKernelTable& qt, const float* x, int64_t m, int64_t k,
                          int8_t* xq, float* xs) {
  pool.run_split(m, 1, kParallelRows, [&](int64_t b, int64_t e) {
    qt.quantize_rows_i8(x + b * k, k, e - b, k, xq + b * k, k, xs + b);
  });
}

template <class Fn>
void split_columns(ThreadPool& pool, int64_t m, int64_t n, int64_t k, Fn fn) {
  if (pool.n_threads() == 1 || m * n * k < (1 << 16)) {
    fn(0, n);
    return;
  }
  pool.run_ranges(n, 16, column_chunks_per_thread(m), fn);
}

}  // namespace

bool quant_matmul_has_kernel(const QuantizedTensor& w, Activations activations) {
  const QuantKernelTable& qt = *kernels().quant;
  if (w.zero_points()) return false;
  if (activations == Activations::kInt8 && int8_activation_kernel(qt, w)) return true;
  return qt.matmul_for(w.format()) != nullptr;
}

void linear(ThreadPool& pool, const float* x, int64_t m, const LinearWeight& w, float* y,
            Activations activations) {
  if (w.quant) {
    quant_matmul(pool, x, m, *w.quant, y, activations);
  } else {
    matmul(pool, x, m, w.dense, y);
  }
}

namespace {

// One product of a linear_many / linear_swiglu call, its kernel resolved once: the quantized
// kernel (or the generic path) and its view, or the dense kernel.
struct Resolved {
  const LinearWeight* w;
  float* y;
  QuantView view;
  QuantMatmulFn qfn;
  MatmulFn dfn;
  MatmulI8I8Fn i8fn;  // int8 activations (W8A8 / W4A8)
};

Resolved resolve(const KernelTable& kt, const LinearJob& j, Activations activations) {
  Resolved r{j.w, j.y, {}, nullptr, nullptr, nullptr};
  if (j.w->quant) {
    const QuantizedTensor& q = *j.w->quant;
    r.view = q.view();
    r.i8fn = activations == Activations::kInt8 ? int8_activation_kernel(*kt.quant, q) : nullptr;
    r.qfn = q.zero_points() ? nullptr : kt.quant->matmul_for(q.format());
  } else {
    r.dfn = kt.matmul_for(j.w->dense.dtype);
  }
  return r;
}

// Columns [lo, hi) of one product; xq / xs: x quantized per token when the job takes int8.
void run_columns(const KernelTable& kt, const Resolved& r, const float* x, const int8_t* xq, const float* xs,
                 int64_t m, int64_t lo, int64_t hi) {
  const int64_t n = r.w->n_out(), k = r.w->n_in();
  if (!r.w->quant) {
    r.dfn(x, k, r.w->dense.data, k, r.y, n, m, k, lo, hi);
  } else if (r.i8fn) {
    r.i8fn(xq, k, xs, r.view, r.y, n, m, lo, hi);
  } else if (r.qfn) {
    r.qfn(x, k, r.view, r.y, n, m, lo, hi);
  } else {
    generic_matmul(kt, x, m, *r.w->quant, r.y, lo, hi);
  }
}

// x quantized once for every job that takes int8 activations (same rows, same result as
// quant_matmul); returns {xq, xs}, or nulls when none does.
std::pair<const int8_t*, const float*> quantize_for(ThreadPool& pool, const KernelTable& kt, const Resolved* rs,
                                                     size_t n, const float* x, int64_t m) {
  bool any_i8 = false;
  for (size_t i = 0; i < n; ++i) any_i8 = any_i8 || rs[i].i8fn;
  if (!any_i8) return {nullptr, nullptr};
  const int64_t k = rs[0].w->n_in();
  thread_local std::vector<int8_t> xq;
  thread_local std::vector<float> xs;
  xq.resize(size_t(m * k));
  xs.resize(size_t(m));
  quantize_activations(pool, *kt.quant, x, m, k, xq.data(), xs.data());
  return {xq.data(), xs.data()};
}

}  // namespace

void quant_matmul(ThreadPool& pool, const float* x, int64_t m, const QuantizedTensor& w, float* y,
                  Activations activations) {
  const KernelTable& kt = kernels();
  LinearWeight lw;
  lw.quant = &w;
  const Resolved r = resolve(kt, {&lw, y}, activations);
  const std::pair<const int8_t*, const float*> q8 = quantize_for(pool, kt, &r, 1, x, m);
  const int8_t* xq = q8.first;
  const float* xs = q8.second;
  split_columns(pool, m, w.n_out(), w.n_in(),
                [&](int64_t j0, int64_t j1) { run_columns(kt, r, x, xq, xs, m, j0, j1); });
}

void linear_many(ThreadPool& pool, const float* x, int64_t m, std::initializer_list<LinearJob> jobs,
                 Activations activations) {
  assert(jobs.size() <= kMaxLinearJobs);
  const KernelTable& kt = kernels();
  std::array<Resolved, kMaxLinearJobs> rs;
  size_t n_jobs = 0;
  int64_t total = 0;
  for (const LinearJob& j : jobs) {
    rs[n_jobs++] = resolve(kt, j, activations);
    total += j.w->n_out();
  }
  // (plain variables, not a structured binding: clang 14 does not capture bindings in lambdas)
  const std::pair<const int8_t*, const float*> q8 = quantize_for(pool, kt, rs.data(), n_jobs, x, m);
  const int8_t* xq = q8.first;
  const float* xs = q8.second;
  pool.run_ranges(total, 16, column_chunks_per_thread(m), [&](int64_t c0, int64_t c1) {
    int64_t base = 0;
    for (size_t i = 0; i < n_jobs; ++i) {
      const int64_t n = rs[i].w->n_out();
      const int64_t lo = std::max(c0 - base, int64_t(0)), hi = std::min(c1 - base, n);
      base += n;
      if (lo < hi) run_columns(kt, rs[i], x, xq, xs, m, lo, hi);
    }
  });
}

void linear_swiglu(ThreadPool& pool, const float* x, int64_t m, const LinearWeight& w_gate, const LinearWeight& w_up,
                   float* gate, float* up, float* out, Activations activations) {
  assert(w_gate.n_out() == w_up.n_out() && w_gate.n_in() == w_up.n_in());
  const KernelTable& kt = kernels();
  const std::array<Resolved, 2> rs = {resolve(kt, {&w_gate, gate}, activations), resolve(kt, {&w_up, up}, activations)};
  const std::pair<const int8_t*, const float*> q8 = quantize_for(pool, kt, rs.data(), rs.size(), x, m);
  const int8_t* xq = q8.first;
  const float* xs = q8.second;
  const int64_t n = w_gate.n_out();
  pool.run_ranges(n, 16, column_chunks_per_thread(m), [&](int64_t c0, int64_t c1) {
    run_columns(kt, rs[0], x, xq, xs, m, c0, c1);
    run_columns(kt, rs[1], x, xq, xs, m, c0, c1);
    for (int64_t i = 0; i < m; ++i) kt.silu_mul(gate + i * n + c0, up + i * n + c0, out + i * n + c0, c1 - c0);
  });
}

}  // namespace tidal::ops
