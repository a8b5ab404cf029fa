// BLAS sanity check. Debian's libtorch resolves libblas.so.3 through the alternatives system; with
// only the reference BLAS installed, a 1024^3 F32 matmul runs at ~3.5 GFLOP/s on two cores
// instead of ~60-145 GFLOP/s with OpenBLAS (libopenblas0-pthread), and training is ~15x slower
// without any error. The trainer measures once per process and warns loudly.
#pragma once

namespace tidal::rl {

// GFLOP/s of one n x n x n F32 matmul through torch (best of up to 3 runs, at most ~0.5 s).
double measure_matmul_gflops(int n = 1024);

inline constexpr double kSlowBlasGflops = 20.0;

// Measures once per process (later calls return the first result) and, when the rate is below
// kSlowBlasGflops, prints a multi-line warning to stderr naming the fix.
double check_blas_speed();

}  // namespace tidal::rl
