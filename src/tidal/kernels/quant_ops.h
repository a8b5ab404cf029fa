// y = x W^T with a quantized W (core/quantized_tensor.h), on a ThreadPool, through the dispatched
// kernels (KernelTable::quant). Shapes: x [m, n_in] F32, y [m, n_out] F32, both contiguous.
#pragma once

#include <cstdint>

#include "tidal/core/quantized_tensor.h"
#include "tidal/core/thread_pool.h"

namespace tidal::ops {

enum class Activations : uint8_t {
  kF32,   // W8A16 style: codes decoded to F32 in registers, activations untouched (every format)
  kInt8,  // W8A8: rows of x quantized to int8 per token (dynamic, symmetric), int8 dot products.
          // Only for int8 weights with per-channel scales; other weights use kF32 silently.
};

// Threads split the output columns. Formats or layouts without a kernel entry (or with zero
// points) take the generic path: dequantize a few rows of W to F32, then the F32 kernel (slow
// but exact to the reference). Batch invariant like ops::matmul (kF32 and kInt8 alike).
// NOTE: the W8A8 path and the generic path use thread-local scratch that grows to the largest
// problem seen and is then reused: no allocation per call in steady state.
void quant_matmul(ThreadPool& pool, const float* x, int64_t m, const QuantizedTensor& w, float* y,
                  Activations activations = Activations::kF32);

// True when `w` runs on a fast kernel of the current table for `activations` (false: generic path).
bool quant_matmul_has_kernel(const QuantizedTensor& w, Activations activations = Activations::kF32);

}  // namespace tidal::ops
