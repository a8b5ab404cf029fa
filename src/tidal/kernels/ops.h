// Compute ops used by the forward pass, on raw F32 buffers. matmul runs on a ThreadPool through
// the dispatched KernelTable; the element-wise ops are cheap (O(n_embd) per token) and portable.
// Shapes in comments are outermost first: [n_tokens, n_embd] is n_tokens rows of n_embd floats.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "tidal/core/dtype.h"
#include "tidal/core/thread_pool.h"
#include "tidal/kernels/kernel_table.h"

namespace tidal::ops {

// Matrix products split their output columns over the pool (ThreadPool::run_ranges: a contiguous
// share per thread, the rest of a slower thread's share taken over in chunks). Decode-sized
// products (m <= 4 rows) stream the weights once and are short, so a late-waking or slowed thread
// would hold up the other: 8 chunks per thread let the faster one take over. Larger m keeps one
// chunk per thread (each chunk re-reads the x rows). Results never depend on the split: every
// output column is computed the same way in any range.
inline int column_chunks_per_thread(int64_t m) { return m <= 4 ? 8 : 1; }

// A weight matrix [n_out, n_in], row-major, as stored (F32, F16 or BF16).
struct Weight {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t n_out = 0, n_in = 0;
};

// y[m, n_out] = x[m, n_in] @ w^T. Threads split the output columns.
void matmul(ThreadPool& pool, const float* x, int64_t m, const Weight& w, float* y);

// Several products of the same x (e.g. q, k, v) in one parallel region: threads split the
// concatenated output columns. Each y_i is [m, w_i.n_out]. Same results as separate matmul calls.
struct MatmulJob {
  const Weight* w;
  float* y;
};
void matmul_many(ThreadPool& pool, const float* x, int64_t m, std::initializer_list<MatmulJob> jobs);

// Row-wise work (norms, per-token activation quantization, RoPE and KV writes) is spread over the
// pool from this many rows: a batch, not one decode token.
constexpr int64_t kParallelRows = 8;

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i], for each of the m rows of length n.
void rms_norm(const float* x, const float* weight, float eps, float* out, int64_t m, int64_t n);
// The same, rows spread over the pool when there are enough of them (each row's arithmetic is
// unchanged, so the result is the same bits).
void rms_norm(ThreadPool& pool, const float* x, const float* weight, float eps, float* out, int64_t m, int64_t n);
// The residual step before a norm: x += r, then out = rms_norm(x), row by row (the same bits as
// add then rms_norm), rows spread over the pool as above.
void add_rms_norm(ThreadPool& pool, float* x, const float* r, const float* weight, float eps, float* out, int64_t m,
                  int64_t n);

// Rotate-half RoPE (Hugging Face Llama/Qwen layout) on [n_heads, head_dim] rows at `pos`:
// for i < head_dim/2: (x[i], x[i + d/2]) rotated by pos * inv_freq[i].
void rope(float* x, int n_heads, int head_dim, int64_t pos, const float* inv_freq);
// The rotation split in two, for callers that rotate many rows at one position (every layer of a
// forward pass): rope_angles fills cos_sin[0, d/2) with cos and [d/2, d) with sin of pos * inv_freq,
// rope_rotate applies them. rope(x, ..., pos, inv_freq) is exactly these two in turn.
void rope_angles(int64_t pos, int head_dim, const float* inv_freq, float* cos_sin);
void rope_rotate(float* x, int n_heads, int head_dim, const float* cos_sin);

// out[i] = silu(gate[i]) * up[i]
// (the kernel table's silu_mul: vectorized exp; element-wise, so the threaded form gives the same bits)
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
void silu_mul(ThreadPool& pool, const float* gate, const float* up, float* out, int64_t n);

// The largest of n values (-inf for n = 0).
float max_of(const float* x, int64_t n);

// In-place softmax over n values (exp_sum of the kernel table: F32 exponentials, double sum).
void softmax(float* x, int64_t n);

// Natural-log softmax of n logits into out: logits[i] - log(sum_j exp(logits[j])), the sum from
// exp_sum shifted by the maximum (full vocabulary).
void log_softmax(const float* logits, float* out, int64_t n);

void add(float* y, const float* x, int64_t n);  // y += x

}  // namespace tidal::ops
