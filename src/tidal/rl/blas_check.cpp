#include "tidal/rl/blas_check.h"

#include <torch/types.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace tidal::rl {

namespace {
double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
}  // namespace

MatmulRate measure_matmul(int n) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::ones({n, n}, torch::kFloat32);
  const torch::Tensor b = torch::ones({n, n}, torch::kFloat32);
  torch::Tensor c = torch::matmul(a.narrow(0, 0, 64), b);  // warm-up: thread pool, BLAS init
  double best = 1e30, best_cpu = 1e30, spent = 0;
  for (int rep = 0; rep < 3 && spent < 0.5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    c = torch::matmul(a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    best_cpu = std::min(best_cpu, std::max(cpu_seconds() - c0, 1e-6));
    spent += s;
  }
  const double flop = 2.0 * double(n) * double(n) * double(n);
  return {flop / best / 1e9, flop / best_cpu / 1e9};
}

MatmulRate check_blas_speed() {
  static std::once_flag once;
  static MatmulRate rate;
  std::call_once(once, [] {
    rate = measure_matmul(1024);
    if (rate.gflops < kSlowBlasGflops && rate.cpu_gflops < kSlowBlasGflops) {
      std::fprintf(stderr,
                   "\n"
                   "**********************************************************************\n"
                   "tidal trainer: WARNING: a 1024x1024x1024 F32 matmul ran at %.1f GFLOP/s\n"
                   "  (%.1f GFLOP per CPU second). That is the reference BLAS: training\n"
                   "  will be ~10-40x slower. Install OpenBLAS (Debian: apt-get install\n"
                   "  libopenblas0-pthread) and check\n"
                   "  `update-alternatives --display libblas.so.3-x86_64-linux-gnu`.\n"
                   "**********************************************************************\n\n",
                   rate.gflops, rate.cpu_gflops);
    }
  });
  return rate;
}

}  // namespace tidal::rl
