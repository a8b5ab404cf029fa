// FP8 E4M3 and E5M2 codes (core/fp8.h) with one F32 scale per block: per tensor, per output
// channel (default) or 128 x 128 blocks as in DeepSeek-V3 / Qwen3-FP8 checkpoints, whose
// `weight_scale_inv` is exactly this scale (W = code * scale). scale = amax / max_finite
// (448 / 57344), code = satfinite_rne(w / scale).
#include "tidal/core/fp8.h"

#include "tidal/core/quant_format.h"
#include "tidal/core/quant_formats/scaled_codes.h"

namespace tidal {
namespace {

using namespace quant_detail;

// NOTE: the largest finite value comes from a traits struct, not a `float` template parameter:
// clang 14 (the fuzz build's compiler) does not accept floating-point non-type template parameters.
struct E4M3 {
  static constexpr float kMax = kFp8E4M3Max;
};
struct E5M2 {
  static constexpr float kMax = kFp8E5M2Max;
};

template <class Fmt, uint8_t (*kEncode)(float)>
void encode(const float* w, const QuantLayout& l, uint8_t* data, uint8_t* scales, float* /*global*/) {
  constexpr float kMax = Fmt::kMax;
  for (int64_t rb = 0; rb < l.n_scale_rows; ++rb) {
    for (int64_t cb = 0; cb < l.n_scale_cols; ++cb) {
      const float scale = block_amax(w, l, rb, cb) / kMax;
      store_f32_scale(scales, rb * l.n_scale_cols + cb, scale);
      encode_block(w, l, data, rb, cb, scale, kEncode);
    }
  }
}

template <float (*kDecode)(uint8_t)>
void decode(const QuantView& v, int64_t r, float* out) {
  decode_row(v, r, out, kDecode, [&](int64_t i) { return load_f32_scale(v.scales, i); });
}

}  // namespace

extern const QuantFormatInfo kQuantFormatFp8E4M3 = {
    QuantFormat::kFp8E4M3,    "fp8_e4m3", 8,
    ScaleType::kF32,          false,      false,
    Granularity::kPerChannel, 0,          encode<E4M3, f32_to_fp8_e4m3>,
    decode<fp8_e4m3_to_f32>};

extern const QuantFormatInfo kQuantFormatFp8E5M2 = {
    QuantFormat::kFp8E5M2,    "fp8_e5m2", 8,
    ScaleType::kF32,          false,      false,
    Granularity::kPerChannel, 0,          encode<E5M2, f32_to_fp8_e5m2_satfinite>,
    decode<fp8_e5m2_to_f32>};

}  // namespace tidal
