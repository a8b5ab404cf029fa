#include "tidal/kernels/quant_ops.h"

#include <algorithm>
#include <array>
#include <cassert>
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

void quant_matmul(ThreadPool& pool, const float* x, int64_t m, const QuantizedTensor& w, float* y,
                  Activations activations) {
  const KernelTable& kt = kernels();
  const QuantKernelTable& qt = *kt.quant;
  const int64_t n = w.n_out(), k = w.n_in();
  const QuantView v = w.view();
  const MatmulI8I8Fn i8fn = activations == Activations::kInt8 ? int8_activation_kernel(qt, w) : nullptr;
  if (i8fn) {
    thread_local std::vector<int8_t> xq;
    thread_local std::vector<float> xs;
    xq.resize(size_t(m * k));
    xs.resize(size_t(m));
    quantize_activations(pool, qt, x, m, k, xq.data(), xs.data());
    const int8_t* xqp = xq.data();
    const float* xsp = xs.data();
    split_columns(pool, m, n, k,
                  [&](int64_t j0, int64_t j1) { i8fn(xqp, k, xsp, v, y, n, m, j0, j1); });
    return;
  }
  const QuantMatmulFn fn = w.zero_points() ? nullptr : qt.matmul_for(w.format());
  if (fn) {
    split_columns(pool, m, n, k, [&](int64_t j0, int64_t j1) { fn(x, k, v, y, n, m, j0, j1); });
  } else {
    split_columns(pool, m, n, k, [&](int64_t j0, int64_t j1) { generic_matmul(kt, x, m, w, y, j0, j1); });
  }
}

void linear(ThreadPool& pool, const float* x, int64_t m, const LinearWeight& w, float* y,
            Activations activations) {
  if (w.quant) {
    quant_matmul(pool, x, m, *w.quant, y, activations);
  } else {
    matmul(pool, x, m, w.dense, y);
  }
}

void linear_many(ThreadPool& pool, const float* x, int64_t m, std::initializer_list<LinearJob> jobs,
                 Activations activations) {
  assert(jobs.size() <= kMaxLinearJobs);
  const KernelTable& kt = kernels();
  const QuantKernelTable& qt = *kt.quant;
  // Per job: the quantized kernel (or nullptr: generic path) and its view, resolved once.
  struct Resolved {
    const LinearWeight* w;
    float* y;
    QuantView view;
    QuantMatmulFn qfn;
    MatmulFn dfn;
    MatmulI8I8Fn i8fn;  // int8 activations (W8A8 / W4A8)
  };
  std::array<Resolved, kMaxLinearJobs> rs;
  size_t n_jobs = 0;
  int64_t total = 0, k = 0;
  bool any_i8 = false;
  for (const LinearJob& j : jobs) {
    Resolved& r = rs[n_jobs++];
    r.w = j.w;
    r.y = j.y;
    r.qfn = nullptr;
    r.dfn = nullptr;
    r.i8fn = nullptr;
    if (j.w->quant) {
      const QuantizedTensor& q = *j.w->quant;
      r.view = q.view();
      r.i8fn = activations == Activations::kInt8 ? int8_activation_kernel(qt, q) : nullptr;
      r.qfn = q.zero_points() ? nullptr : qt.matmul_for(q.format());
      any_i8 = any_i8 || r.i8fn;
    } else {
      r.dfn = kt.matmul_for(j.w->dense.dtype);
    }
    total += j.w->n_out();
    k = j.w->n_in();
  }
  // W8A8: x is quantized once for every job that uses it (same rows, same result as quant_matmul).
  thread_local std::vector<int8_t> xq;
  thread_local std::vector<float> xs;
  if (any_i8) {
    xq.resize(size_t(m * k));
    xs.resize(size_t(m));
    quantize_activations(pool, qt, x, m, k, xq.data(), xs.data());
  }
  const int8_t* xqp = xq.data();
  const float* xsp = xs.data();
  pool.run_ranges(total, 16, column_chunks_per_thread(m), [&](int64_t c0, int64_t c1) {
    int64_t base = 0;
    for (size_t i = 0; i < n_jobs; ++i) {
      const Resolved& r = rs[i];
      const int64_t n = r.w->n_out(), kk = r.w->n_in();
      const int64_t lo = std::max(c0 - base, int64_t(0)), hi = std::min(c1 - base, n);
      base += n;
      if (lo >= hi) continue;
      if (!r.w->quant) {
        r.dfn(x, kk, r.w->dense.data, kk, r.y, n, m, kk, lo, hi);
      } else if (r.i8fn) {
        r.i8fn(xqp, kk, xsp, r.view, r.y, n, m, lo, hi);
      } else if (r.qfn) {
        r.qfn(x, kk, r.view, r.y, n, m, lo, hi);
      } else {
        generic_matmul(kt, x, m, *r.w->quant, r.y, lo, hi);
      }
    }
  });
}

}  // namespace tidal::ops
