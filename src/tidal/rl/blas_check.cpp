#include "tidal/rl/blas_check.h"

#include <torch/types.h>

#include <chrono>
#include <cstdio>
#include <mutex>

namespace tidal::rl {

double measure_matmul_gflops(int n) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::ones({n, n}, torch::kFloat32);
  const torch::Tensor b = torch::ones({n, n}, torch::kFloat32);
  torch::Tensor c = torch::matmul(a.narrow(0, 0, 64), b);  // warm-up: thread pool, BLAS init
  double best = 1e30, spent = 0;
  for (int rep = 0; rep < 3 && spent < 0.5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    c = torch::matmul(a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    spent += s;
  }
  return 2.0 * double(n) * double(n) * double(n) / best / 1e9;
}

double check_blas_speed() {
  static std::once_flag once;
  static double gflops = 0;
  std::call_once(once, [] {
    gflops = measure_matmul_gflops(1024);
    if (gflops < kSlowBlasGflops) {
      std::fprintf(stderr,
                   "\n"
                   "**********************************************************************\n"
                   "tidal trainer: WARNING: a 1024x1024x1024 F32 matmul ran at %.1f GFLOP/s.\n"
                   "  That is the reference BLAS speed: training will be ~10-40x slower.\n"
                   "  Install OpenBLAS (Debian: apt-get install libopenblas0-pthread) and\n"
                   "  check `update-alternatives --display libblas.so.3-x86_64-linux-gnu`.\n"
                   "**********************************************************************\n\n",
                   gflops);
    }
  });
  return gflops;
}

}  // namespace tidal::rl
