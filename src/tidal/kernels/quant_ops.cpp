#include "tidal/kernels/quant_ops.h"

#include <algorithm>
#include <vector>

#include "tidal/kernels/kernel_table.h"

namespace tidal::ops {
namespace {

bool w8a8_ok(const QuantizedTensor& w) {
  const QuantLayout& l = w.layout();
  return l.format == QuantFormat::kInt8 && l.block_rows == 1 && l.block_cols == l.n_in && !w.zero_points();
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

template <class Fn>
void split_columns(ThreadPool& pool, int64_t m, int64_t n, int64_t k, Fn fn) {
  if (pool.n_threads() == 1 || m * n * k < (1 << 16)) {
    fn(0, n);
    return;
  }
  pool.run([&](int ith, int nth) {
    int64_t j0, j1;
    ThreadPool::split(n, ith, nth, 16, &j0, &j1);
    if (j0 < j1) fn(j0, j1);
  });
}

}  // namespace

bool quant_matmul_has_kernel(const QuantizedTensor& w, Activations activations) {
  const QuantKernelTable& qt = *kernels().quant;
  if (w.zero_points()) return false;
  if (activations == Activations::kInt8 && w8a8_ok(w)) return true;
  return qt.matmul_for(w.format()) != nullptr;
}

void quant_matmul(ThreadPool& pool, const float* x, int64_t m, const QuantizedTensor& w, float* y,
                  Activations activations) {
  const KernelTable& kt = kernels();
  const QuantKernelTable& qt = *kt.quant;
  const int64_t n = w.n_out(), k = w.n_in();
  const QuantView v = w.view();
  if (activations == Activations::kInt8 && w8a8_ok(w)) {
    thread_local std::vector<int8_t> xq;
    thread_local std::vector<float> xs;
    xq.resize(size_t(m * k));
    xs.resize(size_t(m));
    qt.quantize_rows_i8(x, k, m, k, xq.data(), k, xs.data());
    const int8_t* xqp = xq.data();
    const float* xsp = xs.data();
    split_columns(pool, m, n, k,
                  [&](int64_t j0, int64_t j1) { qt.matmul_i8_i8(xqp, k, xsp, v, y, n, m, j0, j1); });
    return;
  }
  const QuantMatmulFn fn = w.zero_points() ? nullptr : qt.matmul_for(w.format());
  if (fn) {
    split_columns(pool, m, n, k, [&](int64_t j0, int64_t j1) { fn(x, k, v, y, n, m, j0, j1); });
  } else {
    split_columns(pool, m, n, k, [&](int64_t j0, int64_t j1) { generic_matmul(kt, x, m, w, y, j0, j1); });
  }
}

}  // namespace tidal::ops
