// libFuzzer target: the safetensors header parser must reject or accept any byte string without
// crashing, and whatever it accepts must describe tensors that lie inside the input.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "tidal/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = tidal::parse_safetensors_header(std::span<const uint8_t>(data, size), "fuzz.safetensors");
  if (!h) return 0;
  for (const auto& [name, t] : h->tensors) {
    if (t.offset < h->data_start || t.offset + t.nbytes > size) std::abort();  // accepted a lie
    if (uint64_t(t.numel()) * tidal::dtype_size(t.dtype) != t.nbytes) std::abort();
  }
  return 0;
}
