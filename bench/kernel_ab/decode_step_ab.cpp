// In-process A/B of AVX-512 quantized-kernel variants on one decode step of a 1B Llama.
//   bench/kernel_ab/run.sh FORMAT TOKENS VARIANT...   (builds this file; see run.sh)
// Each variant is a version of src/tidal/kernels/cpu/quant_avx512.cpp compiled with its table
// function renamed (run.sh passes -Dquant_kernel_table_avx512_vnni=<name>), so several versions
// of the same kernels live in one binary. One "token" runs the products of 16 layers (q|k|v
// 2560x2048, o 2048x2048, gate + up 2 x 5632x2048 per column range, down 2048x5632) at m = 1 on
// a 2-thread pool with run_ranges(n, 16, column_chunks_per_thread(1)), x quantized and prepared
// per product as ops does. The variants (and "read": a plain read of the same bytes, split the
// same way) alternate token by token, so the machine's slow and fast memory phases hit all of
// them alike; medians are printed. Why: separate-process A/Bs drift by 10-30% on the
// development machine (docs/quantization.md, "Fourteenth session").
// FORMAT: nvfp4 | mxfp4 (W4A8, prepared kernels) | int8 (W8A8, per-channel weights).
// FP4 weights are held row-interleaved as models hold them (QuantizedTensor::interleave_rows);
// TIDAL_AB_CANONICAL=1 keeps the canonical layout (codes and scales in two arrays).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tidal/core/quantized_tensor.h"
#include "tidal/core/thread_pool.h"
#include "tidal/kernels/kernel_table.h"
#include "tidal/kernels/ops.h"

#ifndef TIDAL_AB_VARIANTS
#error "build with run.sh: -DTIDAL_AB_VARIANTS='X(name) X(name) ...'"
#endif

#define X(name)                         \
  namespace tidal {                     \
  const QuantKernelTable& name();       \
  }
TIDAL_AB_VARIANTS
#undef X

namespace {

using namespace tidal;

struct Matrix {
  std::vector<uint8_t> data, scales;
  QuantizedTensor t;
};

// Plain read of rows [r0, r1): interleaved, the rows' bytes; canonical, the codes, then the same
// fraction of the scales (row-major).
uint64_t read_rows(const Matrix& m, int64_t r0, int64_t r1) {
  const int64_t n = m.t.n_out();
  auto xor_all = [](const uint8_t* p, size_t bytes) {
    uint64_t a[8] = {};
    for (size_t i = 0; i + 64 <= bytes; i += 64)
      for (int l = 0; l < 8; ++l) {
        uint64_t v;
        std::memcpy(&v, p + i + 8 * l, 8);
        a[l] ^= v;
      }
    return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
  };
  if (!m.t.canonical()) {
    return xor_all(m.t.scales() + r0 * m.t.data_stride(), size_t((r1 - r0) * m.t.data_stride()));
  }
  const size_t row = m.data.size() / size_t(n);
  const size_t s0 = m.scales.size() * size_t(r0) / size_t(n), s1 = m.scales.size() * size_t(r1) / size_t(n);
  return xor_all(m.data.data() + size_t(r0) * row, size_t(r1 - r0) * row) ^ xor_all(m.scales.data() + s0, s1 - s0);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string fmt = argc > 1 ? argv[1] : "nvfp4";
  const int tokens = argc > 2 ? std::atoi(argv[2]) : 100;
  const bool is_int8 = fmt == "int8";
  if (!is_int8 && fmt != "nvfp4" && fmt != "mxfp4") {
    std::fprintf(stderr, "format must be nvfp4, mxfp4 or int8, got '%s'\n", fmt.c_str());
    return 2;
  }
  const QuantFormat f = is_int8 ? QuantFormat::kInt8 : fmt == "mxfp4" ? QuantFormat::kMxFp4 : QuantFormat::kNvFp4;
  std::vector<std::pair<std::string, const QuantKernelTable*>> variants;
#define X(name) variants.push_back({#name, &tidal::name()});
  TIDAL_AB_VARIANTS
#undef X
  const char* canonical_env = std::getenv("TIDAL_AB_CANONICAL");
  const bool canonical = canonical_env != nullptr && std::string(canonical_env) == "1";
  constexpr int kLayers = 16;
  constexpr int64_t kShapes[5][2] = {{2560, 2048}, {2048, 2048}, {5632, 2048}, {5632, 2048}, {2048, 5632}};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<Matrix> mats(kLayers * 5);
  double bytes = 0;
  for (int s = 0; s < 5; ++s) {
    std::vector<float> w(size_t(kShapes[s][0] * kShapes[s][1]));
    for (float& v : w) v = nd(rng);
    auto q = quantize(w.data(), kShapes[s][0], kShapes[s][1],
                      {f, is_int8 ? Granularity::kPerChannel : Granularity::kDefault, 128, 128});
    if (!q) {
      std::fprintf(stderr, "quantize: %s\n", q.status().to_string().c_str());
      return 1;
    }
    for (int l = 0; l < kLayers; ++l) {  // one layer's weights, 16 times over (distinct memory)
      Matrix& m = mats[size_t(l * 5 + s)];
      m.data.assign(q->data(), q->data() + q->data_bytes());
      m.scales.assign(q->scales(), q->scales() + q->scale_bytes());
      m.t = QuantizedTensor::wrap(q->layout(), m.data.data(), m.data.size(), m.scales.data(), m.scales.size(),
                                  q->global_scale())
                .value();
      if (!is_int8 && !canonical) {
        m.t = interleave_rows(std::move(m.t));  // an owned copy
        m.data = {};
        m.scales = {};
      }
      bytes += double(q->nbytes());
    }
  }
  ThreadPool pool(2);
  std::vector<float> x(5632), y(5632), y2(5632), xs(1);
  for (float& v : x) v = nd(rng);
  std::vector<int8_t> xq(5632), xp(16384);
  const int n_sides = int(variants.size()) + 1;  // + the plain read
  std::vector<std::vector<double>> tok_s(static_cast<size_t>(n_sides));
  uint64_t sink = 0;
  for (int t = 0; t < tokens + 2; ++t) {  // 2 warm-up tokens
    for (int v = 0; v < n_sides; ++v) {
      const bool read = v == n_sides - 1;
      const QuantKernelTable& qt = *variants[size_t(read ? 0 : v)].second;
      const MatmulI8I8Fn fn = is_int8 ? qt.matmul_i8_i8 : qt.matmul_i8_prepared_for(f);
      const auto t0 = std::chrono::steady_clock::now();
      for (int l = 0; l < kLayers; ++l) {
        for (int s : {0, 1, 2, 4}) {
          const int64_t n = kShapes[s][0], k = kShapes[s][1];
          const Matrix& a = mats[size_t(l * 5 + s)];
          const Matrix& up = mats[size_t(l * 5 + 3)];
          std::atomic<uint64_t> acc{0};
          int64_t ldp = k;
          if (!read) {
            qt.quantize_rows_i8(x.data(), k, 1, k, xq.data(), k, xs.data());
            if (is_int8) {
              std::copy(xq.begin(), xq.begin() + k, xp.begin());
            } else {
              ldp = qt.fp4_i8_row_bytes(k);
              qt.prepare_fp4_i8(xq.data(), k, 1, k, xp.data());
            }
          }
          const QuantView av = a.t.view(), uv = up.t.view();
          pool.run_ranges(n, 16, ops::column_chunks_per_thread(1), [&](int64_t c0, int64_t c1) {
            if (read) {
              uint64_t r = read_rows(a, c0, c1);
              if (s == 2) r ^= read_rows(up, c0, c1);
              acc.fetch_xor(r, std::memory_order_relaxed);
            } else {
              fn(xp.data(), ldp, xs.data(), av, y.data(), n, 1, c0, c1);
              if (s == 2) fn(xp.data(), ldp, xs.data(), uv, y2.data(), n, 1, c0, c1);
            }
          });
          sink ^= acc.load();
        }
      }
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (t >= 2) tok_s[size_t(v)].push_back(1.0 / sec);
    }
  }
  std::printf("%s, 1B decode step's products (%.0f MiB/token), 2 threads, %d tokens per side (sink %llu)\n",
              fmt.c_str(), bytes / 1048576.0, tokens, static_cast<unsigned long long>(sink & 1));
  for (int v = 0; v < n_sides; ++v) {
    std::vector<double> r = tok_s[size_t(v)];
    std::sort(r.begin(), r.end());
    const double med = r[r.size() / 2];
    std::printf("%-16s median %7.1f tok/s = %5.1f GB/s  (quartiles %.1f / %.1f)\n",
                v == n_sides - 1 ? "read" : variants[size_t(v)].first.c_str(), med, med * bytes / 1e9,
                r[r.size() / 4], r[3 * r.size() / 4]);
  }
  return 0;
}
