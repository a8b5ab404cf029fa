#include "tidal/core/cpu_features.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tidal {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // NOTE: __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV).
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
  f.avx_vnni = __builtin_cpu_supports("avxvnni");
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
  add(f.avx512_bf16, "avx512_bf16"); add(f.avx512_vnni, "avx512_vnni"); add(f.avx_vnni, "avx_vnni");
  s += ")";
  return s;
}

}  // namespace tidal
