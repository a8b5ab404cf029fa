// Google Benchmark: quantized-weight matmul per format vs the BF16 kernel, against the machine's
// measured read bandwidth.
//   build/release/bench/bench_quant [--benchmark_filter=...]
// A decode GEMV (m = 1) reads every weight byte once, so its speed is bytes_per_second (weight
// bytes incl. scales) and "roofline" = that / the streaming-read bandwidth measured at start-up by
// the same binary with the same thread count (counter "read_GB/s"). "Mweights/s" is the
// format-independent rate (weights per second). GEMM rows (m = 64) report GFLOP/s.
// Threads: 1 and 2 (ops::quant_matmul / ops::matmul on a ThreadPool).
// "decode/<format>" rows: 1 thread, m = 1, W [512, 2048] kept in L2: the decode compute limit
// (Mweights/s); a format is memory-bound on DRAM when that exceeds read bandwidth / bytes per weight.
// NOTE: each iteration uses the next of several copies of the weights, together >= 256 MiB, so
// weights come from DRAM as in a real model's decode step, not from a last-level cache that would
// hold one matrix (32 MiB on the development machine).
// "decode_step/<format>" rows: one decode step's products of a 1B Llama (16 layers of q|k|v, o,
// gate + up, down; 2 threads, through ops as the engine calls them), alternated token by token in
// one process with a plain read of the same bytes split the same way: "ratio" = kernel / read tells
// how much of the bandwidth the memory system gives this access pattern the kernels use, a steadier
// figure on a shared machine than a comparison with a separate streaming run. Weights are held as
// models hold them (FP4: row-interleaved, QuantizedTensor::interleave_rows); FP4 rows also time the
// canonical layout each token ("canonical_tok/s", "layout_gain" = canonical time / model layout's).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <optional>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "tidal/core/arena.h"
#include "tidal/core/quantized_tensor.h"
#include "tidal/core/thread_pool.h"
#include "tidal/kernels/kernel_table.h"
#include "tidal/kernels/ops.h"
#include "tidal/kernels/quant_ops.h"

namespace {

using tidal::QuantFormat;

// ---- streaming read bandwidth ----

constexpr size_t kStreamBytes = size_t(512) << 20;

// NOTE: 8 independent 64-bit XOR chains so the loop is bound by loads, not by a dependency chain;
// the compiler vectorizes it with SSE2 (the binary is baseline x86-64).
uint64_t stream_read(const uint64_t* p, size_t n) {
  uint64_t a[8] = {};
  for (size_t i = 0; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) a[l] ^= p[i + l];
  return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

double measure_read_bandwidth(tidal::ThreadPool& pool, const tidal::AlignedBuffer<uint64_t>& buf) {
  const size_t n = buf.size();
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<uint64_t> sink(size_t(pool.n_threads()));
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int ith, int nth) {
      int64_t b, e;
      tidal::ThreadPool::split(int64_t(n), ith, nth, 64, &b, &e);
      sink[size_t(ith)] = stream_read(buf.data() + b, size_t(e - b));
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(sink.data());
    best = std::max(best, double(n * 8) / s);
  }
  return best;
}

double g_read_bw[3] = {0, 0, 0};  // bytes/s by thread count (1, 2)

tidal::ThreadPool& pool_for(int threads) {
  static tidal::ThreadPool p1(1), p2(2);
  return threads == 1 ? p1 : p2;
}

void BM_StreamRead(benchmark::State& state) {
  const int threads = int(state.range(0));
  static tidal::AlignedBuffer<uint64_t> buf(kStreamBytes / 8);
  for (auto _ : state) {
    pool_for(threads).run([&](int ith, int nth) {
      int64_t b, e;
      tidal::ThreadPool::split(int64_t(buf.size()), ith, nth, 64, &b, &e);
      benchmark::DoNotOptimize(stream_read(buf.data() + b, size_t(e - b)));
    });
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kStreamBytes));
}

// ---- matmul ----

struct Problem {
  int64_t m, n, k;
  std::vector<float> x, y, w;
};

Problem make_problem(int64_t m, int64_t n, int64_t k) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.05f);
  Problem p{m,
            n,
            k,
            std::vector<float>(size_t(m * k)),
            std::vector<float>(size_t(m * n)),
            std::vector<float>(size_t(n * k))};
  for (auto& v : p.x) v = nd(rng) * 20.0f;
  for (auto& v : p.w) v = nd(rng);
  return p;
}

void report(benchmark::State& state, int threads, double bytes, int64_t m, int64_t n, int64_t k) {
  state.SetBytesProcessed(int64_t(double(state.iterations()) * bytes));
  state.counters["Mweights/s"] =
      benchmark::Counter(double(n * k) * double(state.iterations()) / 1e6, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(double(2 * m * n * k) * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
  state.counters["read_GB/s"] = g_read_bw[threads] / 1e9;
  // roofline = achieved bytes/s / read bandwidth (meaningful for m = 1).
  state.counters["roofline"] = benchmark::Counter(bytes * double(state.iterations()) / g_read_bw[threads],
                                                  benchmark::Counter::kIsRate);
}

constexpr size_t kWorkingSetBytes = size_t(256) << 20;
size_t n_copies(size_t bytes) { return std::max<size_t>(1, (kWorkingSetBytes + bytes - 1) / bytes); }

void BM_Bf16(benchmark::State& state, bool in_cache) {
  const int threads = int(state.range(0));
  Problem p = make_problem(state.range(1), state.range(2), state.range(3));
  std::vector<uint16_t> w16(p.w.size());
  for (size_t i = 0; i < w16.size(); ++i) w16[i] = tidal::f32_to_bf16(p.w[i]);
  const size_t bytes = w16.size() * 2;
  std::vector<std::vector<uint16_t>> copies(in_cache ? 1 : n_copies(bytes), w16);
  size_t it = 0;
  for (auto _ : state) {
    const tidal::ops::Weight w{copies[it++ % copies.size()].data(), tidal::DType::kBF16, p.n, p.k};
    tidal::ops::matmul(pool_for(threads), p.x.data(), p.m, w, p.y.data());
    benchmark::DoNotOptimize(p.y.data());
  }
  report(state, threads, double(bytes), p.m, p.n, p.k);
}

// A copy of a quantized matrix in memory of its own (so that several copies do not share cache
// lines): canonical, or with `act` in the layout models hold it in for those activations on this
// CPU (ops::keep_rows_interleaved: FP4 row-interleaved where the kernels gain).
struct WeightCopy {
  std::vector<uint8_t> data, scales;
  tidal::QuantizedTensor t;
  void assign(const tidal::QuantizedTensor& q, std::optional<tidal::ops::Activations> act = std::nullopt) {
    data.assign(q.data(), q.data() + q.data_bytes());
    scales.assign(q.scales(), q.scales() + q.scale_bytes());
    t = tidal::QuantizedTensor::wrap(q.layout(), data.data(), data.size(), scales.data(), scales.size(),
                                     q.global_scale())
            .value();
    if (act && tidal::ops::keep_rows_interleaved(q.layout(), *act)) {
      t = tidal::interleave_rows(std::move(t));  // owns its copy
      data = {};
      scales = {};
    }
  }
  // Rows [r0, r1): their codes and the same fraction of the scales (the bytes a kernel reads),
  // with no arithmetic.
  uint64_t read_rows(int64_t r0, int64_t r1) const {
    if (!t.canonical()) {  // interleaved: one array, scales first
      const auto* p = reinterpret_cast<const uint64_t*>(t.scales());
      return stream_read(p + size_t(r0 * t.data_stride()) / 8, size_t((r1 - r0) * t.data_stride()) / 8);
    }
    const int64_t n = t.n_out();
    const size_t row = data.size() / size_t(n);
    const size_t s0 = scales.size() * size_t(r0) / size_t(n) / 8;
    const size_t s1 = scales.size() * size_t(r1) / size_t(n) / 8;
    const auto* d = reinterpret_cast<const uint64_t*>(data.data());
    const auto* sc = reinterpret_cast<const uint64_t*>(scales.data());
    return stream_read(d + size_t(r0) * row / 8, (size_t(r1 - r0) * row) / 8) ^ stream_read(sc + s0, s1 - s0);
  }
};

// in_cache: one copy of the weights, small enough to stay in L2 ("decode/" rows): the rate at which
// one core decodes and multiplies, i.e. the compute limit the DRAM rows are held to.
void BM_Quant(benchmark::State& state, QuantFormat f, tidal::Granularity g, tidal::ops::Activations act,
              bool in_cache = false) {
  const int threads = int(state.range(0));
  Problem p = make_problem(state.range(1), state.range(2), state.range(3));
  auto q = tidal::quantize(p.w.data(), p.n, p.k, {f, g, 128, 128});
  if (!q) {
    state.SkipWithError(q.status().to_string().c_str());
    return;
  }
  std::vector<WeightCopy> copies(in_cache ? 1 : n_copies(q->nbytes()));
  for (WeightCopy& c : copies) c.assign(*q, act);
  size_t it = 0;
  for (auto _ : state) {
    tidal::ops::quant_matmul(pool_for(threads), p.x.data(), p.m, copies[it++ % copies.size()].t, p.y.data(),
                             act);
    benchmark::DoNotOptimize(p.y.data());
  }
  report(state, threads, double(q->nbytes()), p.m, p.n, p.k);
}

// Decode rows: best of 20 short repetitions (NOTE: on a shared machine the minimum is the stable
// statistic; means and medians move with the neighbours' load). Read the "_min" rows.
void min_of_reps(benchmark::internal::Benchmark* b) {
  b->Repetitions(20)->MinTime(0.02)->ReportAggregatesOnly(true)->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
}

// ---- decode step: the 1B model's products at m = 1 vs a plain read of the same bytes ----

void BM_DecodeStep(benchmark::State& state, QuantFormat f, tidal::Granularity g, tidal::ops::Activations act) {
  constexpr int kLayers = 16;
  struct Shape {
    int64_t n, k;
  };
  // q|k|v (32 heads, 4 KV heads of 64), o, gate, up, down of a 1B Llama (hidden 2048, MLP 5632).
  constexpr Shape kShapes[5] = {{2560, 2048}, {2048, 2048}, {5632, 2048}, {5632, 2048}, {2048, 5632}};
  // mats: as models hold them; canon: the canonical layout, timed too where the two differ
  std::vector<WeightCopy> mats(kLayers * 5), canon(kLayers * 5);
  bool two_layouts = false;
  double bytes = 0;
  for (int s = 0; s < 5; ++s) {
    Problem p = make_problem(1, kShapes[s].n, kShapes[s].k);
    auto q = tidal::quantize(p.w.data(), p.n, p.k, {f, g, 128, 128});
    if (!q) {
      state.SkipWithError(q.status().to_string().c_str());
      return;
    }
    for (int l = 0; l < kLayers; ++l) {  // copies: one layer's weights, 16 times over
      mats[size_t(l * 5 + s)].assign(*q, act);
      two_layouts = !mats[size_t(l * 5 + s)].t.canonical();
      if (two_layouts) canon[size_t(l * 5 + s)].assign(*q);
      bytes += double(q->nbytes());
    }
  }
  tidal::ThreadPool& pool = pool_for(2);
  std::vector<float> x(5632), y(5632), gate(5632), up(5632);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 17) - 8) * 0.125f;
  std::vector<double> t_kernel, t_canon, t_read;
  uint64_t sink = 0;
  auto step = [&](const std::vector<WeightCopy>& w) {
    for (int l = 0; l < kLayers; ++l) {
      const WeightCopy* m = &w[size_t(l * 5)];
      tidal::ops::LinearWeight wg, wu;
      wg.quant = &m[2].t;
      wu.quant = &m[3].t;
      tidal::ops::quant_matmul(pool, x.data(), 1, m[0].t, y.data(), act);
      tidal::ops::quant_matmul(pool, x.data(), 1, m[1].t, y.data(), act);
      tidal::ops::linear_swiglu(pool, x.data(), 1, wg, wu, gate.data(), up.data(), y.data(), act);
      tidal::ops::quant_matmul(pool, y.data(), 1, m[4].t, x.data() + 2048, act);
    }
  };
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  for (auto _ : state) {
    auto t0 = clock::now();
    step(mats);
    auto t1 = clock::now();
    for (int l = 0; l < kLayers; ++l) {
      const WeightCopy* m = &mats[size_t(l * 5)];
      for (int s : {0, 1, 2, 4}) {
        std::atomic<uint64_t> acc{0};
        pool.run_ranges(m[s].t.n_out(), 16, tidal::ops::column_chunks_per_thread(1), [&](int64_t r0, int64_t r1) {
          uint64_t v = m[s].read_rows(r0, r1);
          if (s == 2) v ^= m[3].read_rows(r0, r1);  // gate and up per range, as linear_swiglu
          acc.fetch_xor(v, std::memory_order_relaxed);
        });
        sink ^= acc.load();
      }
    }
    auto t2 = clock::now();
    if (two_layouts) {
      step(canon);
      t_canon.push_back(seconds(t2, clock::now()));
    }
    t_kernel.push_back(seconds(t0, t1));
    t_read.push_back(seconds(t1, t2));
    state.SetIterationTime(t_kernel.back());
  }
  benchmark::DoNotOptimize(sink);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double mk = median(t_kernel), mr = median(t_read);
  state.counters["tok/s"] = 1.0 / mk;
  state.counters["read_tok/s"] = 1.0 / mr;
  state.counters["GB/s"] = bytes / mk / 1e9;
  state.counters["read_GB/s"] = bytes / mr / 1e9;
  state.counters["ratio"] = mr / mk;
  if (two_layouts) {  // the same kernels on canonical storage (scales in an array of their own)
    state.counters["canonical_tok/s"] = 1.0 / median(t_canon);
    state.counters["layout_gain"] = median(t_canon) / mk;
  }
  state.counters["MiB/token"] = bytes / 1048576.0;
}

void register_all() {
  using tidal::Granularity;
  using tidal::ops::Activations;
  benchmark::RegisterBenchmark("stream_read", BM_StreamRead)
      ->Arg(1)
      ->Arg(2)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  auto shapes = [](benchmark::internal::Benchmark* b) {
    for (int t : {1, 2}) b->Args({t, 1, 5632, 2048})->Args({t, 1, 2048, 5632});
    b->Args({2, 64, 2048, 2048});
    b->Unit(benchmark::kMicrosecond)->UseRealTime();
  };
  shapes(benchmark::RegisterBenchmark("gemv/bf16", [](benchmark::State& s) { BM_Bf16(s, false); }));
  benchmark::RegisterBenchmark("decode/bf16", [](benchmark::State& s) { BM_Bf16(s, true); })
      ->Args({1, 1, 512, 2048})
      ->Unit(benchmark::kMicrosecond)
      ->Apply(min_of_reps);
  struct Case {
    const char* name;
    QuantFormat f;
    Granularity g;
    Activations a;
  };
  for (const Case& c :
       {Case{"int8", QuantFormat::kInt8, Granularity::kPerChannel, Activations::kF32},
        Case{"int8_w8a8", QuantFormat::kInt8, Granularity::kPerChannel, Activations::kInt8},
        Case{"fp8_e4m3", QuantFormat::kFp8E4M3, Granularity::kPerChannel, Activations::kF32},
        Case{"fp8_e4m3_block128", QuantFormat::kFp8E4M3, Granularity::kBlock, Activations::kF32},
        Case{"fp8_e5m2", QuantFormat::kFp8E5M2, Granularity::kPerChannel, Activations::kF32},
        Case{"nvfp4", QuantFormat::kNvFp4, Granularity::kDefault, Activations::kF32},
        Case{"mxfp4", QuantFormat::kMxFp4, Granularity::kDefault, Activations::kF32},
        Case{"nvfp4_w4a8", QuantFormat::kNvFp4, Granularity::kDefault, Activations::kInt8},
        Case{"mxfp4_w4a8", QuantFormat::kMxFp4, Granularity::kDefault, Activations::kInt8}}) {
    shapes(benchmark::RegisterBenchmark((std::string("gemv/") + c.name).c_str(),
                                        [c](benchmark::State& s) { BM_Quant(s, c.f, c.g, c.a); }));
    benchmark::RegisterBenchmark((std::string("decode/") + c.name).c_str(),
                                 [c](benchmark::State& s) { BM_Quant(s, c.f, c.g, c.a, true); })
        ->Args({1, 1, 512, 2048})
        ->Args({1, 1, 192, 5632})
        ->Unit(benchmark::kMicrosecond)
        ->Apply(min_of_reps);
    // (medians of 41 alternating tokens; the reported time is the kernel side's)
    benchmark::RegisterBenchmark((std::string("decode_step/") + c.name).c_str(),
                                 [c](benchmark::State& s) { BM_DecodeStep(s, c.f, c.g, c.a); })
        ->Iterations(41)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  {
    tidal::AlignedBuffer<uint64_t> buf(kStreamBytes / 8);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
    for (int t : {1, 2}) g_read_bw[t] = measure_read_bandwidth(pool_for(t), buf);
  }
  std::fprintf(stderr, "kernels: %s; streaming read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n",
               tidal::kernels().name, g_read_bw[1] / 1e9, g_read_bw[2] / 1e9);
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
