// BLAS sanity check. Debian's libtorch resolves libblas.so.3 through the alternatives system; with
// only the reference BLAS installed, a 1024^3 F32 matmul runs at ~3.5 GFLOP/s on two cores
// instead of ~60-145 GFLOP/s with OpenBLAS (libopenblas0-pthread), and training is ~15x slower
// without any error. The trainer measures once per process and warns loudly.
#pragma once

namespace tidal::rl {

struct MatmulRate {
  double gflops = 0;      // per wall-clock second
  double cpu_gflops = 0;  // per CPU second of this process (insensitive to other load)
};

// One n x n x n F32 matmul through torch (best of up to 3 runs, at most ~0.5 s).
MatmulRate measure_matmul(int n = 1024);

inline constexpr double kSlowBlasGflops = 20.0;

// Measures once per process (later calls return the first result) and, when both rates are
// below kSlowBlasGflops, prints a boxed warning to stderr naming the fix. (The CPU-time rate
// keeps a busy machine from raising a false alarm: the reference BLAS is slow per CPU second
// too.)
MatmulRate check_blas_speed();

}  // namespace tidal::rl
