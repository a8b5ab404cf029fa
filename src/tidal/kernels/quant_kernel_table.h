// The quantized-weight kernels of one CPU level: a table of function pointers reached through
// KernelTable::quant (kernel_table.h) and filled by cpu/quant_scalar.cpp and cpu/quant_avx2.cpp.
//
// Contracts shared by every table (W is a quantized [n_out, n_in] matrix, core/quant_layout.h):
// - matmul_<format>: y[i, j] = sum_c x[i, c] * W[j, c] for i in [0, m), j in [j0, j1), with
//   W = dequantize(w) (W8A16 style: codes are decoded to F32 in registers, activations stay F32,
//   accumulation is F32). x is F32 [m, n_in] with row stride ldx, y F32 with row stride ldy.
//   Requires w.layout.format to match the entry, w.zero_points == nullptr, scales finite, and no
//   NaN/Inf codes in w.data (quantize() never produces them; loaders must check) - ops::quant_matmul
//   routes anything else to its generic path. An entry may be nullptr (optional): same routing.
// - quantize_rows_i8 (W8A8, dynamic per-token activation quantization): for each row i,
//   x_scale[i] = amax_i / 127 and xq[i, c] = clamp(round_to_nearest_even(x[i, c] * (127 / amax_i)),
//   -127, 127) (all 0 with scale 0 for an all-zero row). Every table computes bit-identical results.
// - matmul_i8_i8: y[i, j] = (float(sum_c xq[i, c] * wq[j, c]) * x_scale[i]) * w_scale[j], the sum
//   exact in int32 (n_in <= 2^17). Requires an int8 W with one F32 scale per row
//   (block_rows == 1, block_cols == n_in) and no zero points. Bit-identical across tables.
// - matmul_nvfp4_i8 / matmul_mxfp4_i8 (W4A8: FP4 weights, int8 activations from quantize_rows_i8):
//   y[i, j] = sum over W's blocks b of float(sum_{c in b} xq[i, c] * 2 e2m1(code[j, c])) * scale_b,
//   times x_scale[i] * 0.5 at the end; scale_b = decode(scale code) * global_scale. The block sums
//   are exact integers; the F32 accumulation over blocks may be ordered differently per table
//   (results agree within rounding, not bit for bit). Requires that format, no zero points.
// - W4A8 with activations prepared once (optional: all four entries or none): prepare_fp4_i8 writes
//   m rows of xq (row stride ldq) into xp, fp4_i8_row_bytes(n_in) bytes per row, in the order this
//   table's FP4 kernels read (one layout for NVFP4 and MXFP4); matmul_{nv,mx}fp4_i8_prepared(xp,
//   fp4_i8_row_bytes(n_in), x_scale, ...) then give the same bits as matmul_{nv,mx}fp4_i8(xq, ldq,
//   x_scale, ...). ops::quant_matmul prepares x once per product instead of once per column range,
//   which lets decode split a product into many short ranges.
// - Batch invariance (as for KernelTable::matmul): y[i, j] depends only on row i of x and row j of
//   W, never on m, j0/j1 or tiling. Tests (tests/kernels/quant_kernel_test.cpp) check it bit for bit.
// Thread-safety: all entries are pure functions of their arguments.
#pragma once

#include <cstdint>

#include "tidal/core/quant_layout.h"

namespace tidal {

using QuantMatmulFn = void (*)(const float* x, int64_t ldx, const QuantView& w, float* y, int64_t ldy,
                               int64_t m, int64_t j0, int64_t j1);
using QuantizeRowsI8Fn = void (*)(const float* x, int64_t ldx, int64_t m, int64_t k, int8_t* xq, int64_t ldq,
                                  float* x_scale);
using MatmulI8I8Fn = void (*)(const int8_t* xq, int64_t ldq, const float* x_scale, const QuantView& w,
                              float* y, int64_t ldy, int64_t m, int64_t j0, int64_t j1);
using PreparedRowBytesFn = int64_t (*)(int64_t n_in);
using PrepareI8Fn = void (*)(const int8_t* xq, int64_t ldq, int64_t m, int64_t n_in, int8_t* xp);

struct QuantKernelTable {
  const char* name;
  QuantMatmulFn matmul_int8;      // (optional)
  QuantMatmulFn matmul_fp8_e4m3;  // (optional)
  QuantMatmulFn matmul_fp8_e5m2;  // (optional)
  QuantMatmulFn matmul_nvfp4;     // (optional)
  QuantMatmulFn matmul_mxfp4;     // (optional)
  QuantizeRowsI8Fn quantize_rows_i8;
  MatmulI8I8Fn matmul_i8_i8;
  MatmulI8I8Fn matmul_nvfp4_i8;
  MatmulI8I8Fn matmul_mxfp4_i8;
  PreparedRowBytesFn fp4_i8_row_bytes;     // (optional, with the three below)
  PrepareI8Fn prepare_fp4_i8;              // (optional)
  MatmulI8I8Fn matmul_nvfp4_i8_prepared;  // (optional)
  MatmulI8I8Fn matmul_mxfp4_i8_prepared;  // (optional)
  // Whether matmul_nvfp4 / matmul_mxfp4 (F32 activations) run faster on row-interleaved storage
  // (QuantizedTensor::interleave_rows) than on canonical. Every table's kernels give the same bits
  // on both; the int8-activation ones are faster interleaved in every table. AVX-512 +9-11% (one
  // stream per row); the AVX2 tiles, four rows at a time, -2 to -6% (their four rows' scale codes
  // are neighbours in canonical storage). See ops::keep_rows_interleaved.
  bool fp4_f32_interleaved = false;

  // The kernel taking prepared activations for a format (nvfp4, mxfp4), or nullptr.
  MatmulI8I8Fn matmul_i8_prepared_for(QuantFormat f) const {
    if (!prepare_fp4_i8) return nullptr;
    switch (f) {
      case QuantFormat::kNvFp4: return matmul_nvfp4_i8_prepared;
      case QuantFormat::kMxFp4: return matmul_mxfp4_i8_prepared;
      default: return nullptr;
    }
  }

  // The int8-activation kernel for a format: int8 (per-channel weights), nvfp4, mxfp4; else nullptr.
  MatmulI8I8Fn matmul_i8_for(QuantFormat f) const {
    switch (f) {
      case QuantFormat::kInt8: return matmul_i8_i8;
      case QuantFormat::kNvFp4: return matmul_nvfp4_i8;
      case QuantFormat::kMxFp4: return matmul_mxfp4_i8;
      default: return nullptr;
    }
  }

  QuantMatmulFn matmul_for(QuantFormat f) const {
    switch (f) {
      case QuantFormat::kInt8:
        return matmul_int8;
      case QuantFormat::kFp8E4M3:
        return matmul_fp8_e4m3;
      case QuantFormat::kFp8E5M2:
        return matmul_fp8_e5m2;
      case QuantFormat::kNvFp4:
        return matmul_nvfp4;
      case QuantFormat::kMxFp4:
        return matmul_mxfp4;
    }
    return nullptr;
  }
};

// Defined by each backend file; objects (not functions) so that the KernelTables holding their
// addresses are constant-initialized.
extern const QuantKernelTable kQuantKernelTableScalar;
extern const QuantKernelTable kQuantKernelTableAvx2;
// The AVX-512 VNNI table (cpu/quant_avx512.cpp): 512-bit W8A8 and W4A8 (vpdpbusd), W8A16 int8 and
// FP8 kernels, and the AVX2 ones for the other entries. The avx512
// KernelTable uses it when the CPU has AVX512_VNNI, the AVX2 table otherwise. Call only on such a CPU.
const QuantKernelTable& quant_kernel_table_avx512_vnni();
// The same table compiled again with AVX512-VBMI (cpu/quant_avx512_vbmi.cpp): its W4A8 kernels
// decode FP4 codes with vpermb (no masking), the same bytes, so the same bits. The avx512
// KernelTable uses it when the CPU also has AVX512_VBMI. Call only on such a CPU.
const QuantKernelTable& quant_kernel_table_avx512_vbmi();
// The AVX2 table with VEX vpdpbusd for its int8 products (cpu/quant_avx2_vnni.cpp), same results
// bit for bit. The avx2 KernelTable uses it when the CPU has AVX-VNNI. Call only on such a CPU.
const QuantKernelTable& quant_kernel_table_avx2_vnni();

}  // namespace tidal
