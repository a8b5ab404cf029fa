// F32 -> F32/F16/BF16 conversion of parameter data, at memory speed: an AVX2 kernel (chosen at
// run time; scalar fallback) with streaming stores, spread over torch's intra-op threads. Used by
// the weight writer (weight_sync.cpp) to convert the trainer's F32 parameters straight into the
// shared-memory segment.
//
// Results are bit-identical to ATen's `copy_` (what this file used before, and what the tests
// compare against): round to nearest even, overflow to +-inf, subnormals kept; a NaN becomes
// 0xFFFF in BF16 (ATen's vectorised rule: a NaN, sign set, payload dropped) and sign|0x7E00 in
// F16 (c10::Half's rule). Note core/dtype.h's f32_to_bf16 keeps a NaN's sign and payload instead.
#pragma once

#include <cstdint>
#include <cstring>

#include "tidal/core/dtype.h"

namespace tidal::rl {

// dst receives n values of `dtype` (F32, F16 or BF16); the buffers must not overlap.
void convert_f32(const float* src, int64_t n, DType dtype, void* dst);

// ---- for tests and benchmarks ----
enum class ConvertIsa { kScalar, kAvx2 };
ConvertIsa convert_isa();                   // what convert_f32 uses on this CPU
bool convert_isa_supported(ConvertIsa isa);
// One thread, one ISA, no threading: the kernel convert_f32 splits its work over.
void convert_f32_serial(ConvertIsa isa, const float* src, int64_t n, DType dtype, void* dst);
// The reference: ATen's copy_ (one call on the whole buffer).
void convert_f32_aten(const float* src, int64_t n, DType dtype, void* dst);

namespace detail {
void convert_f32_avx2(const float* src, int64_t n, DType dtype, void* dst);  // F16 / BF16 only

// One value, ATen's BF16 rule (round to nearest even, any NaN -> 0xFFFF). `static`: every file
// compiles its own copy with its own flags, so the linker cannot keep the -mavx2 file's copy for
// callers that run on CPUs without AVX2.
static inline uint16_t bf16_scalar(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0xffffu;
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
}  // namespace detail

}  // namespace tidal::rl
