#include "tidal/rl/convert.h"

#include <torch/types.h>

#include <cstring>

namespace tidal::rl {

void convert_f32(const float* src, int64_t n, DType dtype, void* dst) {
  if (n == 0) return;
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
    return;
  }
  torch::NoGradGuard no_grad;
  const torch::ScalarType st = dtype == DType::kBF16 ? torch::kBFloat16 : torch::kFloat16;
  // NOTE: from_blob wraps the caller's buffers without copying; copy_ converts with ATen's
  // vectorised round-to-nearest-even kernels.
  const torch::Tensor in = torch::from_blob(const_cast<float*>(src), {n}, torch::kFloat32);
  torch::Tensor out = torch::from_blob(dst, {n}, st);
  out.copy_(in);
}

}  // namespace tidal::rl
