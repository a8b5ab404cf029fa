// Per-thread scratch buffers of the blocked GEMM paths in cpu/avx2.cpp and cpu/avx512.cpp.
//
// Everything here is in an anonymous namespace on purpose: each of those files is compiled with its
// own -m flags, and an inline function shared through a header could be emitted with AVX-512
// instructions in one object and picked by the linker for every caller (the ODR rule at the top of
// those files). Here every including translation unit gets its own private copy, built with its own
// flags. Include this only from the per-ISA kernel files.
#pragma once

#include <cstddef>
#include <cstdlib>

namespace tidal {
namespace {  // NOLINT(google-build-namespaces,cert-dcl59-cpp): one private copy per ISA file

// A 64-byte aligned float array that only grows.
struct ScratchFloats {
  float* p = nullptr;
  size_t n = 0;
  ScratchFloats() = default;
  ScratchFloats(const ScratchFloats&) = delete;
  ScratchFloats& operator=(const ScratchFloats&) = delete;
  ~ScratchFloats() { std::free(p); }
  float* reserve(size_t want) {
    if (want > n) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, (want * sizeof(float) + 63) / 64 * 64));
      if (p == nullptr) std::abort();
      n = want;
    }
    return p;
  }
};

// The blocked path's buffers, shared by every weight dtype, reused across calls (one per thread and
// per ISA file).
struct PackScratch {
  ScratchFloats w;    // kPanelCols x kPanelK widened weights
  ScratchFloats acc;  // m x kPanelCols x (lanes per vector) partial accumulators; grows to the largest m
};
PackScratch& pack_scratch() {
  thread_local PackScratch scratch;
  return scratch;
}

}  // namespace
}  // namespace tidal
