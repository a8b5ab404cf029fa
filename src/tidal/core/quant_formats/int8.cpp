// INT8, symmetric: codes in [-127, 127], one F32 scale per block (default: per output channel),
// scale = amax / 127, code = round_to_nearest_even(w / scale). Optional zero points (asymmetric
// int8 from other tools) are honoured by the reference decode only.
#include <cmath>

#include "tidal/core/quant_format.h"
#include "tidal/core/quant_formats/scaled_codes.h"

namespace tidal {
namespace {

using namespace quant_detail;

void encode(const float* w, const QuantLayout& l, uint8_t* data, uint8_t* scales, float* /*global*/) {
  for (int64_t rb = 0; rb < l.n_scale_rows; ++rb) {
    for (int64_t cb = 0; cb < l.n_scale_cols; ++cb) {
      const float scale = block_amax(w, l, rb, cb) / 127.0f;
      store_f32_scale(scales, rb * l.n_scale_cols + cb, scale);
      encode_block(w, l, data, rb, cb, scale, [](float x) {
        const float q = std::nearbyint(x);  // default rounding mode: nearest, ties to even
        return uint8_t(int8_t(q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q));
      });
    }
  }
}

void decode(const QuantView& v, int64_t r, float* out) {
  decode_row(
      v, r, out, [](uint8_t c) { return float(int8_t(c)); },
      [&](int64_t i) { return load_f32_scale(v.scales, i); });
}

}  // namespace

extern const QuantFormatInfo kQuantFormatInt8 = {
    QuantFormat::kInt8, "int8", 8, ScaleType::kF32, false, true, Granularity::kPerChannel, 0, encode, decode};

}  // namespace tidal
