#include "tidal/model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "tidal/core/fp8.h"

namespace tidal {

PagedKvStorage::PagedKvStorage(const ModelConfig& config, int64_t n_blocks, int64_t block_size, DType dtype)
    : n_layers_(config.n_layers),
      n_blocks_(n_blocks),
      block_size_(block_size),
      row_(config.n_kv_heads * config.head_dim),
      n_kv_heads_(config.n_kv_heads),
      dtype_(dtype),
      block_bytes_(size_t(block_size * row_) * dtype_size(dtype)),
      data_(2 * size_t(n_layers_ * n_blocks_) * block_bytes_),
      scales_(dtype == DType::kF8E4M3 ? 2 * size_t(n_layers_ * n_blocks_ * block_size_ * n_kv_heads_) : 0) {}

size_t PagedKvStorage::bytes_per_token(const ModelConfig& c, DType dtype) {
  const size_t scales = dtype == DType::kF8E4M3 ? size_t(c.n_kv_heads) * sizeof(float) : 0;
  return 2 * size_t(c.n_layers) * (size_t(c.n_kv_heads * c.head_dim) * dtype_size(dtype) + scales);
}

bool PagedKvStorage::supports(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 || dtype == DType::kF8E4M3;
}

float* PagedKvStorage::scale_at(int which, int64_t layer, int64_t block) {
  if (scales_.size() == 0) return nullptr;
  return scales_.data() +
         ((size_t(which) * size_t(n_layers_) + size_t(layer)) * size_t(n_blocks_) + size_t(block)) *
             size_t(block_size_ * n_kv_heads_);
}

void* PagedKvStorage::at(int which, int64_t layer, int64_t block) {
  return data_.data() + ((size_t(which) * size_t(n_layers_) + size_t(layer)) * size_t(n_blocks_) + size_t(block)) *
                            block_bytes_;
}

void PagedKvStorage::copy_block(int64_t src, int64_t dst, int64_t n) {
  const size_t bytes = size_t(n * row_) * dtype_size(dtype_);
  for (int64_t l = 0; l < n_layers_; ++l) {
    std::memcpy(k(l, dst), k(l, src), bytes);
    std::memcpy(v(l, dst), v(l, src), bytes);
    if (scales_.size() != 0) {
      std::memcpy(k_scale(l, dst), k_scale(l, src), size_t(n * n_kv_heads_) * sizeof(float));
      std::memcpy(v_scale(l, dst), v_scale(l, src), size_t(n * n_kv_heads_) * sizeof(float));
    }
  }
}

namespace {

// FP8 KV: each head's row of hd values gets s = amax / 448 and codes e4m3_satfinite(x / s)
// (the weights' E4M3 recipe, per row); an all-zero row stores scale 0 and zero codes. A row with
// NaN or Inf stores a NaN scale, so the non-finite value reaches the output as it would unquantized.
void quantize_row_e4m3(const float* x, int64_t hd, uint8_t* codes, float* scale) {
  float amax = 0;
  bool finite = true;
  for (int64_t i = 0; i < hd; ++i) {
    amax = std::max(amax, std::fabs(x[i]));
    finite = finite && std::isfinite(x[i]);
  }
  const float s = finite ? amax / kFp8E4M3Max : NAN;
  *scale = s;
  for (int64_t i = 0; i < hd; ++i) codes[i] = s > 0 ? f32_to_fp8_e4m3(x[i] / s) : uint8_t(0);  // NaN s: 0
}

void write_row(DType dt, const float* x, int64_t row, int64_t hd, void* dst, float* scales) {
  switch (dt) {
    case DType::kF32: std::memcpy(dst, x, size_t(row) * sizeof(float)); break;
    case DType::kF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < row; ++i) d[i] = f32_to_f16(x[i]);
      break;
    }
    case DType::kBF16: {
      uint16_t* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < row; ++i) d[i] = f32_to_bf16(x[i]);
      break;
    }
    case DType::kF8E4M3:
      for (int64_t h = 0; h < row / hd; ++h) quantize_row_e4m3(x + h * hd, hd, static_cast<uint8_t*>(dst) + h * hd, scales + h);
      break;
    default: break;
  }
}

void read_row(DType dt, const void* src, const float* scales, int64_t row, int64_t hd, float* x) {
  for (int64_t i = 0; i < row; ++i) {
    switch (dt) {
      case DType::kF32: x[i] = static_cast<const float*>(src)[i]; break;
      case DType::kF16: x[i] = f16_to_f32(static_cast<const uint16_t*>(src)[i]); break;
      case DType::kBF16: x[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]); break;
      case DType::kF8E4M3: x[i] = fp8_e4m3_to_f32(static_cast<const uint8_t*>(src)[i]) * scales[i / hd]; break;
      default: x[i] = NAN; break;
    }
  }
}

}  // namespace

void PagedKvStorage::write_token(int64_t layer, int64_t block, int64_t slot, const float* k, const float* v) {
  const size_t off = size_t(slot * row_) * dtype_size(dtype_);
  float* ks = k_scale(layer, block);
  float* vs = v_scale(layer, block);
  const int64_t hd = row_ / n_kv_heads_;
  write_row(dtype_, k, row_, hd, static_cast<uint8_t*>(this->k(layer, block)) + off, ks ? ks + slot * n_kv_heads_ : nullptr);
  write_row(dtype_, v, row_, hd, static_cast<uint8_t*>(this->v(layer, block)) + off, vs ? vs + slot * n_kv_heads_ : nullptr);
}

void PagedKvStorage::read_token(int64_t layer, int64_t block, int64_t slot, float* k, float* v) {
  const size_t off = size_t(slot * row_) * dtype_size(dtype_);
  const float* ks = k_scale(layer, block);
  const float* vs = v_scale(layer, block);
  const int64_t hd = row_ / n_kv_heads_;
  read_row(dtype_, static_cast<const uint8_t*>(this->k(layer, block)) + off, ks ? ks + slot * n_kv_heads_ : nullptr, row_, hd, k);
  read_row(dtype_, static_cast<const uint8_t*>(this->v(layer, block)) + off, vs ? vs + slot * n_kv_heads_ : nullptr, row_, hd, v);
}

KvCache::KvCache(const ModelConfig& config, int64_t capacity, DType dtype)
    : storage_(config, 1, capacity, dtype) {}

}  // namespace tidal
