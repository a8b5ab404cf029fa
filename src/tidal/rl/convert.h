// F32 -> F32/F16/BF16 conversion of parameter data (round to nearest even, as core/dtype.h),
// vectorised and spread over torch's intra-op threads. Used by the weight writer so that a
// weight sync runs at memory speed rather than at one scalar conversion per element.
#pragma once

#include <cstdint>

#include "tidal/core/dtype.h"

namespace tidal::rl {

// dst receives n values of `dtype` (F32, F16 or BF16); the buffers must not overlap.
void convert_f32(const float* src, int64_t n, DType dtype, void* dst);

}  // namespace tidal::rl
