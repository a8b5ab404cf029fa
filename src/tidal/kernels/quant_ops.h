// y = x W^T with a quantized W (core/quantized_tensor.h), on a ThreadPool, through the dispatched
// kernels (KernelTable::quant). Shapes: x [m, n_in] F32, y [m, n_out] F32, both contiguous.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "tidal/core/quantized_tensor.h"
#include "tidal/core/thread_pool.h"
#include "tidal/kernels/ops.h"

namespace tidal::ops {

enum class Activations : uint8_t {
  kF32,   // W8A16 style: codes decoded to F32 in registers, activations untouched (every format)
  kInt8,  // rows of x quantized to int8 per token (dynamic, symmetric), int8 dot products: W8A8
          // for int8 weights with per-channel scales, W4A8 for NVFP4 / MXFP4; other weights use
          // kF32 silently.
};

// Threads split the output columns. Formats or layouts without a kernel entry (or with zero
// points) take the generic path: dequantize a few rows of W to F32, then the F32 kernel (slow
// but exact to the reference). Batch invariant like ops::matmul (kF32 and kInt8 alike).
// NOTE: the W8A8 path and the generic path use thread-local scratch that grows to the largest
// problem seen and is then reused: no allocation per call in steady state.
void quant_matmul(ThreadPool& pool, const float* x, int64_t m, const QuantizedTensor& w, float* y,
                  Activations activations = Activations::kF32);

// A weight matrix as the forward pass holds it: dense (F32/F16/BF16, ops::Weight) or quantized.
// When `quant` is set it is used and `dense` is ignored (it may still view the source weights, e.g.
// for an embedding gathered from a quantized-on-load model). Does not own `quant`.
struct LinearWeight {
  Weight dense;
  const QuantizedTensor* quant = nullptr;
  int64_t n_out() const { return quant ? quant->n_out() : dense.n_out; }
  int64_t n_in() const { return quant ? quant->n_in() : dense.n_in; }
  bool is_quantized() const { return quant != nullptr; }
};

// y[m, n_out] = x[m, n_in] @ w^T for either kind of weight: the one call the decoder makes.
// Dense weights go to ops::matmul, quantized ones to quant_matmul. Batch invariant.
void linear(ThreadPool& pool, const float* x, int64_t m, const LinearWeight& w, float* y,
            Activations activations = Activations::kF32);

// Several products of the same x in one parallel region (threads split the concatenated output
// columns), dense and quantized weights mixed freely; same results as separate linear() calls.
// At most kMaxLinearJobs jobs (NOTE: per-call state lives on the stack; no allocation per token).
struct LinearJob {
  const LinearWeight* w;
  float* y;
};
constexpr size_t kMaxLinearJobs = 8;
void linear_many(ThreadPool& pool, const float* x, int64_t m, std::initializer_list<LinearJob> jobs,
                 Activations activations = Activations::kF32);

// The SwiGLU MLP's first half: gate = x W_gate^T, up = x W_up^T, out = silu(gate) * up, in one
// parallel region. Each thread's column range computes its gate and up columns, then their
// product while they are in cache: one region and no separate pass over [m, n_out] (decode runs
// this once per layer per token). The same bits as linear_many + silu_mul (silu_mul is
// element-wise and position-independent); out may alias gate or up.
void linear_swiglu(ThreadPool& pool, const float* x, int64_t m, const LinearWeight& w_gate, const LinearWeight& w_up,
                   float* gate, float* up, float* out, Activations activations = Activations::kF32);

// Whether a matrix of this layout, multiplied with these activations by the active kernel table,
// is best held row-interleaved (QuantizedTensor::interleave_rows): FP4 with int8 activations
// always (AVX-512 +12-18% decode, AVX2 +1-3%), with F32 activations where the table says so.
// Results are the same bits either way; models ask this when they bind weights.
bool keep_rows_interleaved(const QuantLayout& layout, Activations activations);

// True when `w` runs on a fast kernel of the current table for `activations` (false: generic path).
bool quant_matmul_has_kernel(const QuantizedTensor& w, Activations activations = Activations::kF32);

}  // namespace tidal::ops
