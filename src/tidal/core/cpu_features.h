// Run-time CPU feature detection. Kernels are chosen once, at start-up, from cpu_isa().
//
// env: TIDAL_CPU=scalar|avx2|avx512 forces a lower level (to test the portable paths on a big
// machine). Asking for a level the CPU lacks prints a warning and uses the best one available.
#pragma once

#include <string>

namespace tidal {

enum class CpuIsa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_vnni = false, avx512_vbmi = false, avx_vnni = false;
  CpuIsa best = CpuIsa::kScalar;  // highest level this CPU supports
};

const CpuFeatures& cpu_features();  // detected once; thread-safe
CpuIsa cpu_isa();                   // the level in use: best, or lower when TIDAL_CPU asks
const char* cpu_isa_name(CpuIsa isa);
std::string cpu_features_summary();  // e.g. "avx512 (avx512f avx512bw ... avx512_bf16)"

}  // namespace tidal
