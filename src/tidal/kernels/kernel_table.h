// The compute backend seam: a table of function pointers, one table per CPU level
// (cpu/scalar.cpp, cpu/avx2.cpp, cpu/avx512.cpp), chosen once at start-up by kernels().
//
// Contracts shared by every table:
// - matmul: y[i, j] = sum_k x[i, k] * w[j, k] for i in [0, m), j in [j0, j1).
//   x is F32 [m, k] with row stride ldx; w is [n, k] row-major in the table's weight dtype with row
//   stride ldw (elements); y is F32 with row stride ldy. Accumulation is F32.
// - Batch invariance: the value of y[i, j] depends only on row i of x and row j of w, never on m,
//   on j0/j1 or on how a caller tiles the work: every table reduces each dot product in one fixed
//   order. Tests (tests/kernels) check this bit-for-bit.
// - dot / axpy: plain F32 vectors of length n; same fixed-order rule as matmul.
// - axpy_rows: y += sum_r a[r] * widen(v row r) for r = 0, 1, ..., rows - 1 in that order; every
//   element's result is bit-identical to calling the table's axpy / axpy_f16 / axpy_bf16 once
//   per row (attention's P x V; the accumulator stays in registers across rows). For F8_E4M3 rows
//   (the FP8 KV cache) each element sees y = y + a[r] * decode(code) in row order, the same
//   single rounding (fused on AVX2) as the 16-bit types.
// - matmul_e4m3 (the FP8 KV cache's Q.K): w holds FP8 E4M3 codes (one byte each, row stride ldw
//   bytes), decoded exactly with no scale (the caller multiplies each output by its row's scale);
//   finite codes only (the KV quantizer never writes NaN for finite inputs).
// - exp_sum: out[i] = exp(x[i] - shift) in F32 for i < n, within 2 ulp of the exact value (a
//   Cephes-style polynomial: n = round(d log2 e), d - n ln 2 in two FMA steps, a degree-6
//   polynomial, scaled by 2^n), 0 where x[i] - shift < -87 (no subnormals), and returns the sum of
//   the outputs in double in one fixed order: lane l = i mod 8 sums its elements in increasing i,
//   then ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). Every table computes the same
//   operations in the same order (the scalar one with std::fma), so they agree bit for bit; an
//   element's value depends only on x[i] and shift. out may be x. Inputs must not exceed shift + 88.
//   Used by softmax, log_softmax and the sampler (vocabulary-sized rows, every generated token).
// - silu_mul: out[i] = silu(gate[i]) * up[i] with e = exp(-|g|) as in exp_sum (never overflows):
//   g / (1 + e) for g >= 0, g e / (1 + e) for g < 0; the same bits in every table. out may be
//   gate or up. Element-wise, so any split of [0, n) gives the same values.
// - quant: the quantized-weight kernels, with their own contracts in quant_kernel_table.h.
#pragma once

#include <cstdint>

#include "tidal/core/cpu_features.h"
#include "tidal/core/dtype.h"
#include "tidal/kernels/quant_kernel_table.h"

namespace tidal {

using MatmulFn = void (*)(const float* x, int64_t ldx, const void* w, int64_t ldw, float* y,
                          int64_t ldy, int64_t m, int64_t k, int64_t j0, int64_t j1);

struct KernelTable {
  const char* name;
  MatmulFn matmul_f32;   // w is float
  MatmulFn matmul_f16;   // w is IEEE binary16 (uint16_t)
  MatmulFn matmul_bf16;  // w is bfloat16 (uint16_t)
  MatmulFn matmul_e4m3;  // w is FP8 E4M3 codes (uint8_t), unscaled
  float (*dot)(const float* a, const float* b, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a * x
  void (*axpy_f16)(float a, const uint16_t* x, float* y, int64_t n);   // y += a * widen(x)
  void (*axpy_bf16)(float a, const uint16_t* x, float* y, int64_t n);  // y += a * widen(x)
  // v: `rows` rows of n values of type vt (F32/F16/BF16/F8_E4M3), row stride ldv elements.
  void (*axpy_rows)(DType vt, const float* a, const void* v, int64_t ldv, int64_t rows, float* y, int64_t n);
  double (*exp_sum)(const float* x, float shift, float* out, int64_t n);  // out[i] = exp(x[i] - shift)
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  const QuantKernelTable* quant;  // quantized weights (quant_kernel_table.h); never nullptr

  MatmulFn matmul_for(DType w) const {
    switch (w) {
      case DType::kF32: return matmul_f32;
      case DType::kF16: return matmul_f16;
      case DType::kBF16: return matmul_bf16;
      case DType::kF8E4M3: return matmul_e4m3;
      default: return nullptr;
    }
  }
};

// The table for cpu_isa(), after a start-up self-check against the scalar table (a level that
// fails it is skipped with a warning). Thread-safe.
const KernelTable& kernels();
bool kernel_table_self_check(CpuIsa isa);  // the check kernels() runs, for tests
const KernelTable& kernels_for(CpuIsa isa);  // a specific level (must be <= the CPU's best)

// Defined by each backend file.
const KernelTable& kernel_table_scalar();
const KernelTable& kernel_table_avx2();
const KernelTable& kernel_table_avx512();

// The AVX2 exp_sum and silu_mul, also used by the avx512 table.
double exp_sum_avx2(const float* x, float shift, float* out, int64_t n);
void silu_mul_avx2(const float* gate, const float* up, float* out, int64_t n);

}  // namespace tidal
