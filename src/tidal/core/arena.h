// Aligned memory: AlignedBuffer owns one aligned block; Arena hands out aligned slices of a block
// and frees them all at once with reset(). Used for per-step activations so the hot path does
// not call malloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace tidal {

constexpr size_t kAlignment = 64;  // one cache line; also a full AVX-512 register

struct AlignedFree {
  void operator()(void* p) const;
};

// Zero-initialised aligned allocation; empty (nullptr) for 0 bytes. Aborts on out-of-memory.
std::unique_ptr<uint8_t[], AlignedFree> aligned_alloc_bytes(size_t bytes);

template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) : n_(n), data_(aligned_alloc_bytes(n * sizeof(T))) {}
  T* data() { return reinterpret_cast<T*>(data_.get()); }
  const T* data() const { return reinterpret_cast<const T*>(data_.get()); }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  void resize(size_t n) {  // contents are zeroed, not kept
    if (n != n_) { data_ = aligned_alloc_bytes(n * sizeof(T)); n_ = n; }
  }

 private:
  size_t n_ = 0;
  std::unique_ptr<uint8_t[], AlignedFree> data_;
};

// A bump allocator over one block. alloc() returns nullptr when the block is exhausted;
// callers size the arena up front (reserve) from the step's shapes.
class Arena {
 public:
  Arena() = default;
  explicit Arena(size_t capacity) { reserve(capacity); }
  void reserve(size_t capacity);  // grows the block (only when empty: invalidates nothing live)
  void* alloc(size_t bytes);       // kAlignment-aligned; nullptr if it does not fit
  template <class T>
  T* alloc_array(size_t n) { return static_cast<T*>(alloc(n * sizeof(T))); }
  void reset() { used_ = 0; }
  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }

 private:
  std::unique_ptr<uint8_t[], AlignedFree> block_;
  size_t capacity_ = 0, used_ = 0;
};

}  // namespace tidal
