#include "tidal/kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tidal/kernels/kernel_table.h"

namespace tidal::ops {

void matmul(ThreadPool& pool, const float* x, int64_t m, const Weight& w, float* y) {
  const MatmulFn fn = kernels().matmul_for(w.dtype);
  const int64_t n = w.n_out, k = w.n_in;
  // Small problems are not worth waking the workers for.
  if (pool.n_threads() == 1 || m * n * k < (1 << 16)) {
    fn(x, k, w.data, k, y, n, m, k, 0, n);
    return;
  }
  pool.run_ranges(n, 16, column_chunks_per_thread(m), [&](int64_t j0, int64_t j1) { fn(x, k, w.data, k, y, n, m, k, j0, j1); });
}

void matmul_many(ThreadPool& pool, const float* x, int64_t m, std::initializer_list<MatmulJob> jobs) {
  int64_t total = 0;
  for (const MatmulJob& j : jobs) total += j.w->n_out;
  const KernelTable& kt = kernels();
  pool.run_ranges(total, 16, column_chunks_per_thread(m), [&](int64_t c0, int64_t c1) {
    int64_t base = 0;
    for (const MatmulJob& j : jobs) {
      const int64_t n = j.w->n_out, k = j.w->n_in;
      const int64_t lo = std::max(c0 - base, int64_t(0)), hi = std::min(c1 - base, n);
      if (lo < hi) kt.matmul_for(j.w->dtype)(x, k, j.w->data, k, j.y, n, m, k, lo, hi);
      base += n;
    }
  });
}

void rms_norm(const float* x, const float* weight, float eps, float* out, int64_t m, int64_t n) {
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += double(xr[i]) * double(xr[i]);
    const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
    for (int64_t i = 0; i < n; ++i) o[i] = xr[i] * scale * weight[i];
  }
}

void rms_norm(ThreadPool& pool, const float* x, const float* weight, float eps, float* out, int64_t m, int64_t n) {
  pool.run_split(m, 1, kParallelRows,
                 [&](int64_t b, int64_t e) { rms_norm(x + b * n, weight, eps, out + b * n, e - b, n); });
}

void add_rms_norm(ThreadPool& pool, float* x, const float* r, const float* weight, float eps, float* out, int64_t m,
                  int64_t n) {
  pool.run_split(m, 1, kParallelRows, [&](int64_t b, int64_t e) {
    add(x + b * n, r + b * n, (e - b) * n);
    rms_norm(x + b * n, weight, eps, out + b * n, e - b, n);
  });
}

void rope_angles(int64_t pos, int head_dim, const float* inv_freq, float* cos_sin) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    // NOTE: the angle is formed in double: pos * inv_freq loses digits in float at long contexts.
    const double angle = double(pos) * double(inv_freq[i]);
    cos_sin[i] = float(std::cos(angle));
    cos_sin[half + i] = float(std::sin(angle));
  }
}

void rope_rotate(float* x, int n_heads, int head_dim, const float* cos_sin) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + int64_t(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float c = cos_sin[i], s = cos_sin[half + i];
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

void rope(float* x, int n_heads, int head_dim, int64_t pos, const float* inv_freq) {
  std::vector<float> cos_sin(static_cast<size_t>(head_dim));
  rope_angles(pos, head_dim, inv_freq, cos_sin.data());
  rope_rotate(x, n_heads, head_dim, cos_sin.data());
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) { kernels().silu_mul(gate, up, out, n); }

void silu_mul(ThreadPool& pool, const float* gate, const float* up, float* out, int64_t n) {
  pool.run_split(n, 64, 4096, [&](int64_t b, int64_t e) { silu_mul(gate + b, up + b, out + b, e - b); });
}

float max_of(const float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

void softmax(float* x, int64_t n) {
  const double sum = kernels().exp_sum(x, max_of(x, n), x, n);
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void log_softmax(const float* logits, float* out, int64_t n) {
  const float mx = max_of(logits, n);
  const double lse = double(mx) + std::log(kernels().exp_sum(logits, mx, out, n));  // out: scratch
  for (int64_t i = 0; i < n; ++i) out[i] = float(double(logits[i]) - lse);
}

void add(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace tidal::ops
