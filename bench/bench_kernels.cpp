// Google Benchmark: matmul kernels per ISA level and weight dtype.
//   build/release/bench/bench_kernels [--benchmark_filter=...]
// Decode is a GEMV (m = 1; bound by weight bytes: see bytes_per_second), prefill a GEMM (m = 64+;
// bound by FLOPs: see the "GFLOP/s" counter).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "tidal/kernels/kernel_table.h"

namespace {

using tidal::CpuIsa;
using tidal::DType;

void run_matmul(benchmark::State& state, CpuIsa isa, DType dt) {
  if (int(isa) > int(tidal::cpu_features().best)) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> x(size_t(m * k)), y(size_t(m * n)), w32(dt == DType::kF32 ? size_t(n * k) : 0);
  std::vector<uint16_t> w16(dt == DType::kF32 ? 0 : size_t(n * k));
  for (auto& v : x) v = nd(rng);
  for (auto& v : w32) v = nd(rng);
  for (auto& v : w16) v = dt == DType::kF16 ? tidal::f32_to_f16(nd(rng)) : tidal::f32_to_bf16(nd(rng));
  const void* w = dt == DType::kF32 ? static_cast<const void*>(w32.data()) : w16.data();
  const tidal::MatmulFn fn = tidal::kernels_for(isa).matmul_for(dt);
  for (auto _ : state) {
    fn(x.data(), k, w, k, y.data(), n, m, k, 0, n);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * n * k * int64_t(tidal::dtype_size(dt)));
  state.counters["GFLOP/s"] = benchmark::Counter(double(2 * m * n * k) * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void register_all() {
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
      const std::string name = std::string("matmul/") + tidal::cpu_isa_name(isa) + "/" + tidal::dtype_name(dt);
      auto* b = benchmark::RegisterBenchmark(name.c_str(), [isa, dt](benchmark::State& s) { run_matmul(s, isa, dt); });
      b->Args({1, 2048, 2048})->Args({1, 5632, 2048})->Args({64, 2048, 2048})->Args({16, 2048, 2048})->Args({512, 2048, 2048});
      b->Args({512, 5632, 2048})->Args({512, 2048, 5632})->Unit(benchmark::kMicrosecond);  // prefill: MLP up, down
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
