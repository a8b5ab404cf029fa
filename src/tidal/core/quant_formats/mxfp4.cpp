// MXFP4 (OCP Microscaling v1.0): FP4 E2M1 codes in 1 x 32 blocks, one E8M0 (power of two) scale
// per block, chosen by the OCP reference rule: scale = 2^(floor(log2(amax(block))) - 2) (2 is
// E2M1's largest exponent), code = e2m1_satfinite(w / scale). An all-zero block gets scale 2^-127.
#include "tidal/core/e8m0.h"
#include "tidal/core/fp4.h"
#include "tidal/core/quant_format.h"
#include "tidal/core/quant_formats/scaled_codes.h"

namespace tidal {
namespace {

using namespace quant_detail;

void encode(const float* w, const QuantLayout& l, uint8_t* data, uint8_t* scales, float* /*global*/) {
  for (int64_t rb = 0; rb < l.n_scale_rows; ++rb) {
    for (int64_t cb = 0; cb < l.n_scale_cols; ++cb) {
      const float amax = block_amax(w, l, rb, cb);
      const uint8_t s = amax > 0.0f ? e8m0_from_exponent(std::ilogb(amax) - 2) : uint8_t(0);
      scales[rb * l.n_scale_cols + cb] = s;
      encode_block(w, l, data, rb, cb, amax > 0.0f ? e8m0_to_f32(s) : 0.0f, f32_to_fp4_e2m1);
    }
  }
}

void decode(const QuantView& v, int64_t r, float* out) {
  const uint8_t* s = static_cast<const uint8_t*>(v.scales);
  decode_row(v, r, out, fp4_e2m1_to_f32, [&](int64_t i) { return e8m0_to_f32(s[i]); });
}

}  // namespace

extern const QuantFormatInfo kQuantFormatMxFp4 = {
    QuantFormat::kMxFp4, "mxfp4", 4, ScaleType::kE8M0, false, false, Granularity::kBlock, 32, encode, decode};

}  // namespace tidal
