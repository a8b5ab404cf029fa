#include "tidal/rl/convert.h"

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <cstring>

namespace tidal::rl {

namespace {


void convert_scalar(const float* src, int64_t n, DType dtype, void* dst) {
  if (dtype == DType::kBF16) {
    uint8_t* d = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = detail::bf16_scalar(src[i]);
      std::memcpy(d + 2 * i, &h, 2);
    }
    return;
  }
  convert_f32_aten(src, n, dtype, dst);  // F16 without F16C: c10::Half's conversion
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
}

}  // namespace

bool convert_isa_supported(ConvertIsa isa) {
  static const bool avx2 = cpu_has_avx2();
  return isa == ConvertIsa::kScalar || avx2;
}

ConvertIsa convert_isa() {
  return convert_isa_supported(ConvertIsa::kAvx2) ? ConvertIsa::kAvx2 : ConvertIsa::kScalar;
}

void convert_f32_serial(ConvertIsa isa, const float* src, int64_t n, DType dtype, void* dst) {
  if (n <= 0) return;
  if (dtype == DType::kF32) {
    std::memcpy(dst, src, size_t(n) * sizeof(float));
    return;
  }
  if (isa == ConvertIsa::kAvx2 && convert_isa_supported(isa)) {
    detail::convert_f32_avx2(src, n, dtype, dst);
    return;
  }
  convert_scalar(src, n, dtype, dst);
}

void convert_f32_aten(const float* src, int64_t n, DType dtype, void* dst) {
  if (n <= 0) return;
  torch::NoGradGuard no_grad;
  const torch::ScalarType st =
      dtype == DType::kBF16 ? torch::kBFloat16 : dtype == DType::kF16 ? torch::kFloat16 : torch::kFloat32;
  const torch::Tensor in = torch::from_blob(const_cast<float*>(src), {n}, torch::kFloat32);
  torch::Tensor out = torch::from_blob(dst, {n}, st);
  out.copy_(in);
}

void convert_f32(const float* src, int64_t n, DType dtype, void* dst) {
  if (n <= 0) return;
  const ConvertIsa isa = convert_isa();
  const size_t esz = dtype_size(dtype);
  // NOTE: chunks of >= 256k values (1 MiB read) per thread: below that the hand-off costs more
  // than it saves. Each chunk aligns its own stores (convert_f32_avx2).
  constexpr int64_t kGrain = int64_t(1) << 18;
  if (n < 2 * kGrain || at::get_num_threads() <= 1) {
    convert_f32_serial(isa, src, n, dtype, dst);
    return;
  }
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    convert_f32_serial(isa, src + begin, end - begin, dtype, static_cast<uint8_t*>(dst) + size_t(begin) * esz);
  });
}

}  // namespace tidal::rl
