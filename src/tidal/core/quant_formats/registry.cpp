// The list of quantization formats, in QuantFormat order. One line per format file.
#include <array>
#include <cstdlib>

#include "tidal/core/quant_format.h"

namespace tidal {

extern const QuantFormatInfo kQuantFormatInt8;
extern const QuantFormatInfo kQuantFormatFp8E4M3;
extern const QuantFormatInfo kQuantFormatFp8E5M2;
extern const QuantFormatInfo kQuantFormatNvFp4;
extern const QuantFormatInfo kQuantFormatMxFp4;

namespace {
const std::array<const QuantFormatInfo*, kNumQuantFormats> kFormats = {
    &kQuantFormatInt8, &kQuantFormatFp8E4M3, &kQuantFormatFp8E5M2, &kQuantFormatNvFp4, &kQuantFormatMxFp4};
}  // namespace

const QuantFormatInfo& quant_format_info(QuantFormat format) {
  const size_t i = size_t(format);
  if (i >= kFormats.size() || kFormats[i]->format != format) std::abort();  // registry out of order: a bug
  return *kFormats[i];
}

std::span<const QuantFormatInfo* const> quant_formats() { return kFormats; }

std::optional<QuantFormat> quant_format_from_name(std::string_view name) {
  if (name == "fp8") return QuantFormat::kFp8E4M3;
  for (const QuantFormatInfo* f : kFormats)
    if (name == f->name) return f->format;
  return std::nullopt;
}

}  // namespace tidal
