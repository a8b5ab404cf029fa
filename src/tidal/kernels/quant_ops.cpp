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
  // int8 W8A8 kernels read per-channel scales as consecutive floats (canonical storage).
  const bool per_channel = l.block_rows == 1 && l.block_cols == l.n_in && w.scale_stride() == 1;
  if (l.format == QuantFormat::kInt8 && !per_channel) return nullptr;
  return qt.matmul_i8_for(l.format);
}

}  // namespace

bool keep_rows_interleaved(const QuantLayout& layout, Activations activations) {
  if (!QuantizedTensor::can_interleave_rows(layout)) return false;
  return activations == Activations::kInt8 || kernels().quant->fp4_f32_interleaved;
}

namespace {

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
  MatmulI8I8Fn i8p;   // the same on activations prepared once per product (W4A8), if the table has it
};

Resolved resolve(const KernelTable& kt, const LinearJob& j, Activations activations) {
  Resolved r{j.w, j.y, {}, nullptr, nullptr, nullptr, nullptr};
  if (j.w->quant) {
    const QuantizedTensor& q = *j.w->quant;
    r.view = q.view();
    r.i8fn = activations == Activations::kInt8 ? int8_activation_kernel(*kt.quant, q) : nullptr;
    r.i8p = r.i8fn ? kt.quant->matmul_i8_prepared_for(q.format()) : nullptr;
    r.qfn = q.zero_points() ? nullptr : kt.quant->matmul_for(q.format());
  } else {
    r.dfn = kt.matmul_for(j.w->dense.dtype);
  }
  return r;
}

// x as the int8-activation kernels take it: quantized per token (xq, xs), and prepared for the
// W4A8 kernels (xp, row stride ldp) when a job has a prepared kernel. Nulls when no job takes int8.
struct I8Inputs {
  const int8_t* xq = nullptr;
  const float* xs = nullptr;
  const int8_t* xp = nullptr;
  int64_t ldp = 0;
};

// Columns [lo, hi) of one product.
void run_columns(const KernelTable& kt, const Resolved& r, const float* x, const I8Inputs& in, int64_t m, int64_t lo,
                 int64_t hi) {
  const int64_t n = r.w->n_out(), k = r.w->n_in();
  if (!r.w->quant) {
    r.dfn(x, k, r.w->dense.data, k, r.y, n, m, k, lo, hi);
  } else if (r.i8p && in.xp) {
    r.i8p(in.xp, in.ldp, in.xs, r.view, r.y, n, m, lo, hi);
  } else if (r.i8fn) {
    r.i8fn(in.xq, k, in.xs, r.view, r.y, n, m, lo, hi);
  } else if (r.qfn) {
    r.qfn(x, k, r.view, r.y, n, m, lo, hi);
  } else {
    generic_matmul(kt, x, m, *r.w->quant, r.y, lo, hi);
  }
}

// x quantized per token once for every job of a call that takes int8 activations, and prepared
// once for those with a prepared kernel. Row-independent, so spreading batch rows over the pool
// gives the same bits.
I8Inputs quantize_for(ThreadPool& pool, const KernelTable& kt, const Resolved* rs, size_t n, const float* x,
                      int64_t m) {
  bool any_i8 = false, any_prepared = false;
  for (size_t i = 0; i < n; ++i) {
    any_i8 = any_i8 || rs[i].i8fn;
    any_prepared = any_prepared || rs[i].i8p;
  }
  if (!any_i8) return {};
  const QuantKernelTable& qt = *kt.quant;
  const int64_t k = rs[0].w->n_in();
  const int64_t ldp = any_prepared ? qt.fp4_i8_row_bytes(k) : 0;
  // NOTE: the buffers are the calling thread's; the workers below reach them through these pointers.
  thread_local std::vector<int8_t> xq_buf, xp_buf;
  thread_local std::vector<float> xs_buf;
  xq_buf.resize(size_t(m * k));
  xs_buf.resize(size_t(m));
  xp_buf.resize(size_t(m * ldp));
  int8_t* xq = xq_buf.data();
  int8_t* xp = xp_buf.data();
  float* xs = xs_buf.data();
  pool.run_split(m, 1, kParallelRows, [&](int64_t b, int64_t e) {
    qt.quantize_rows_i8(x + b * k, k, e - b, k, xq + b * k, k, xs + b);
    if (ldp) qt.prepare_fp4_i8(xq + b * k, k, e - b, k, xp + b * ldp);
  });
  return {xq, xs, ldp ? xp : nullptr, ldp};
}

}  // namespace

void quant_matmul(ThreadPool& pool, const float* x, int64_t m, const QuantizedTensor& w, float* y,
                  Activations activations) {
  const KernelTable& kt = kernels();
  LinearWeight lw;
  lw.quant = &w;
  const Resolved r = resolve(kt, {&lw, y}, activations);
  const I8Inputs in = quantize_for(pool, kt, &r, 1, x, m);
  split_columns(pool, m, w.n_out(), w.n_in(), [&](int64_t j0, int64_t j1) { run_columns(kt, r, x, in, m, j0, j1); });
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
  const I8Inputs in = quantize_for(pool, kt, rs.data(), n_jobs, x, m);
  pool.run_ranges(total, 16, column_chunks_per_thread(m), [&](int64_t c0, int64_t c1) {
    int64_t base = 0;
    for (size_t i = 0; i < n_jobs; ++i) {
      const int64_t n = rs[i].w->n_out();
      const int64_t lo = std::max(c0 - base, int64_t(0)), hi = std::min(c1 - base, n);
      base += n;
      if (lo < hi) run_columns(kt, rs[i], x, in, m, lo, hi);
    }
  });
}

void linear_swiglu(ThreadPool& pool, const float* x, int64_t m, const LinearWeight& w_gate, const LinearWeight& w_up,
                   float* gate, float* up, float* out, Activations activations) {
  assert(w_gate.n_out() == w_up.n_out() && w_gate.n_in() == w_up.n_in());
  const KernelTable& kt = kernels();
  const std::array<Resolved, 2> rs = {resolve(kt, {&w_gate, gate}, activations), resolve(kt, {&w_up, up}, activations)};
  const I8Inputs in = quantize_for(pool, kt, rs.data(), rs.size(), x, m);
  const int64_t n = w_gate.n_out();
  pool.run_ranges(n, 16, column_chunks_per_thread(m), [&](int64_t c0, int64_t c1) {
    run_columns(kt, rs[0], x, in, m, c0, c1);
    run_columns(kt, rs[1], x, in, m, c0, c1);
    for (int64_t i = 0; i < m; ++i) kt.silu_mul(gate + i * n + c0, up + i * n + c0, out + i * n + c0, c1 - c0);
  });
}

}  // namespace tidal::ops
