#include "tidal/core/cpu_features.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace tidal {

namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}
#endif

// cpuid + xgetbv directly (not __builtin_cpu_supports, whose feature names differ between
// GCC and clang versions). A feature counts only if the OS also saves its registers.
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;        // XMM + YMM state
  const bool os_avx512 = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
  if (__get_cpuid_count(7, 0, &a, &b7, &c7, &d7)) {
    unsigned bb, cc, dd;
    __get_cpuid_count(7, 1, &a71, &bb, &cc, &dd);
  }
  f.avx2 = avx && os_avx && (b7 & (1u << 5));
  f.fma = fma && os_avx;
  f.f16c = f16c && os_avx;
  f.avx_vnni = os_avx && (a71 & (1u << 4));
  if (os_avx512) {
    f.avx512f = b7 & (1u << 16);
    f.avx512dq = b7 & (1u << 17);
    f.avx512bw = b7 & (1u << 30);
    f.avx512vl = b7 & (1u << 31);
    f.avx512_vnni = c7 & (1u << 11);
    f.avx512_vbmi = c7 & (1u << 1);
    f.avx512_bf16 = a71 & (1u << 5);
  }
#endif
  if (f.avx2 && f.fma && f.f16c) f.best = CpuIsa::kAvx2;
  if (f.best == CpuIsa::kAvx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) {
    f.best = CpuIsa::kAvx512;
  }
  return f;
}

CpuIsa choose() {
  const CpuFeatures& f = cpu_features();
  const char* env = std::getenv("TIDAL_CPU");
  if (!env || !*env) return f.best;
  CpuIsa want;
  if (!std::strcmp(env, "scalar")) want = CpuIsa::kScalar;
  else if (!std::strcmp(env, "avx2")) want = CpuIsa::kAvx2;
  else if (!std::strcmp(env, "avx512")) want = CpuIsa::kAvx512;
  else {
    std::fprintf(stderr, "tidal: warning: TIDAL_CPU='%s' is not one of scalar|avx2|avx512; using %s\n",
                 env, cpu_isa_name(f.best));
    return f.best;
  }
  if (int(want) > int(f.best)) {
    std::fprintf(stderr, "tidal: warning: TIDAL_CPU=%s but this CPU supports only %s; using %s\n", env,
                 cpu_isa_name(f.best), cpu_isa_name(f.best));
    return f.best;
  }
  return want;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

CpuIsa cpu_isa() {
  static const CpuIsa isa = choose();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "?";
}

std::string cpu_features_summary() {
  const CpuFeatures& f = cpu_features();
  std::string s = cpu_isa_name(cpu_isa());
  s += " (detected:";
  auto add = [&](bool on, const char* name) { if (on) { s += ' '; s += name; } };
  add(f.avx2, "avx2"); add(f.fma, "fma"); add(f.f16c, "f16c"); add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw"); add(f.avx512vl, "avx512vl"); add(f.avx512dq, "avx512dq");
  add(f.avx512_bf16, "avx512_bf16"); add(f.avx512_vnni, "avx512_vnni");
  add(f.avx512_vbmi, "avx512_vbmi"); add(f.avx_vnni, "avx_vnni");
  s += ")";
  return s;
}

}  // namespace tidal
