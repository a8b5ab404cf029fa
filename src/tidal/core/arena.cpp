#include "tidal/core/arena.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tidal {

void AlignedFree::operator()(void* p) const { std::free(p); }

std::unique_ptr<uint8_t[], AlignedFree> aligned_alloc_bytes(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (!p) {
    std::fprintf(stderr, "tidal: out of memory allocating %zu bytes\n", bytes);
    std::abort();
  }
  std::memset(p, 0, rounded);
  return std::unique_ptr<uint8_t[], AlignedFree>(static_cast<uint8_t*>(p));
}

void Arena::reserve(size_t capacity) {
  if (capacity <= capacity_) return;
  block_ = aligned_alloc_bytes(capacity);
  capacity_ = capacity;
  used_ = 0;
}

void* Arena::alloc(size_t bytes) {
  size_t start = (used_ + kAlignment - 1) / kAlignment * kAlignment;
  if (start + bytes > capacity_) return nullptr;
  used_ = start + bytes;
  return block_.get() + start;
}

}  // namespace tidal
