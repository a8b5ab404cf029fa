#include "tidal/core/dtype.h"

namespace tidal {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
    case DType::kI8: return 1;
    case DType::kF8E4M3: return 1;
    case DType::kF8E5M2: return 1;
    case DType::kF8E8M0: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU8: return "U8";
    case DType::kI8: return "I8";
    case DType::kF8E4M3: return "F8_E4M3";
    case DType::kF8E5M2: return "F8_E5M2";
    case DType::kF8E8M0: return "F8_E8M0";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view s) {
  if (s == "F32" || s == "f32" || s == "float32") return DType::kF32;
  if (s == "F16" || s == "f16" || s == "float16") return DType::kF16;
  if (s == "BF16" || s == "bf16" || s == "bfloat16") return DType::kBF16;
  if (s == "I32" || s == "i32" || s == "int32") return DType::kI32;
  if (s == "I64" || s == "i64" || s == "int64") return DType::kI64;
  if (s == "U8" || s == "u8" || s == "uint8") return DType::kU8;
  if (s == "I8" || s == "i8" || s == "int8") return DType::kI8;
  if (s == "F8_E4M3" || s == "f8_e4m3" || s == "float8_e4m3fn") return DType::kF8E4M3;
  if (s == "F8_E5M2" || s == "f8_e5m2" || s == "float8_e5m2") return DType::kF8E5M2;
  if (s == "F8_E8M0" || s == "f8_e8m0" || s == "float8_e8m0fnu") return DType::kF8E8M0;
  return std::nullopt;
}

}  // namespace tidal
