// NVFP4: FP4 E2M1 codes in 1 x 16 blocks, one FP8 E4M3 scale per block and one F32 global scale
// per tensor (NVIDIA ModelOpt's `weight_scale` / `weight_scale_2`):
//   global = amax(W) / (6 * 448); block scale = e4m3(amax(block) / (6 * global));
//   code = e2m1(w / (block_scale * global)).
#include "tidal/core/fp4.h"
#include "tidal/core/fp8.h"
#include "tidal/core/quant_format.h"
#include "tidal/core/quant_formats/scaled_codes.h"

namespace tidal {
namespace {

using namespace quant_detail;

void encode(const float* w, const QuantLayout& l, uint8_t* data, uint8_t* scales, float* global) {
  float amax = 0.0f;
  for (int64_t i = 0; i < l.n_out * l.n_in; ++i) amax = std::max(amax, std::fabs(w[i]));
  const float g = amax > 0.0f ? amax / (kFp4E2M1Max * kFp8E4M3Max) : 1.0f;
  *global = g;
  for (int64_t rb = 0; rb < l.n_scale_rows; ++rb) {
    for (int64_t cb = 0; cb < l.n_scale_cols; ++cb) {
      const uint8_t s = f32_to_fp8_e4m3(block_amax(w, l, rb, cb) / (kFp4E2M1Max * g));
      scales[rb * l.n_scale_cols + cb] = s;
      encode_block(w, l, data, rb, cb, fp8_e4m3_to_f32(s) * g, f32_to_fp4_e2m1);
    }
  }
}

void decode(const QuantView& v, int64_t r, float* out) {
  const uint8_t* s = static_cast<const uint8_t*>(v.scales);
  decode_row(v, r, out, fp4_e2m1_to_f32, [&](int64_t i) { return fp8_e4m3_to_f32(s[i]); });
}

}  // namespace

extern const QuantFormatInfo kQuantFormatNvFp4 = {QuantFormat::kNvFp4,
                                                  "nvfp4",
                                                  4,
                                                  ScaleType::kFp8E4M3,
                                                  true,
                                                  false,
                                                  Granularity::kBlock,
                                                  16,
                                                  encode,
                                                  decode};

}  // namespace tidal
