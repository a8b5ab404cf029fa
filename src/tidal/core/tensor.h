// Tensor: a non-owning view (data pointer, dtype, shape, strides in elements), up to 4 dims.
// Shapes are written outermost first, as in PyTorch: a [n_tokens, n_embd] activation has
// shape {n_tokens, n_embd} and strides {n_embd, 1}. Storage is owned elsewhere (a mapped file,
// an AlignedBuffer, an Arena).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "tidal/core/dtype.h"

namespace tidal {

constexpr int kMaxDims = 4;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> stride{};  // in elements

  // A contiguous (row-major) view.
  static Tensor contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape);
  static Tensor contiguous(void* data, DType dtype, const int64_t* shape, int ndim);

  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  bool empty() const { return data == nullptr; }
  template <class T>
  T* as() const { return static_cast<T*>(data); }
  // Row r of a 2-D tensor (pointer arithmetic in bytes).
  void* row(int64_t r) const {
    return static_cast<uint8_t*>(data) + size_t(r * stride[0]) * dtype_size(dtype);
  }
  std::string shape_string() const;  // "[4, 64]"
};

// "[4, 64]" for any list of dimensions (error messages).
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace tidal
