// tidal bench --model DIR [-p 128,512] [-n 128] [-r 5] [--threads N] [--depth D] [--kv-dtype T]:
// llama-bench-style prefill (pp: one batch of N prompt tokens) and decode (tg: N tokens one at a
// time) throughput, optionally after D tokens already in the KV cache (llama-bench -d).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "command.h"
#include "tidal/kernels/kernel_table.h"
#include "tidal/model/model.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal bench --model DIR [--prompt-tokens 128,512] [--gen-tokens 128] [--reps 5] [--threads N] [--json]
                   [--depth D] [--kv-dtype auto|f32|f16|bf16|fp8] [--quantization F]
Measures, like llama-bench: pp<N> = N prompt tokens in one forward call; tg<N> = N tokens decoded
one at a time. With --depth D (llama-bench -d) both start after D tokens already in the KV cache
(filled once per run, not timed); default 0, an empty cache. Reports the median over --reps runs
(after one warm-up). Token ids are fixed pseudo-random values; the weights' content does not
affect speed. --kv-dtype: the KV cache element type (default: the model's, see the engine flags).
)";

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int run_bench(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s%s", kHelp, tidal::cli::kQuantizationFlagsHelp);
    return 0;
  }
  const auto model_dir = args.get("model");
  const std::string pp_text = args.get_or("prompt-tokens", "128,512");
  const long long tg = args.get_int("gen-tokens", 128);
  const long long reps = args.get_int("reps", 5);
  const bool as_json = args.has("json");
  const long long depth = args.get_int("depth", 0);
  const int threads = tidal::cli::threads_flag(args);
  tidal::QuantizationOptions quantization;
  if (!tidal::cli::read_quantization_flags(args, &quantization)) return 2;
  std::optional<tidal::DType> kv_flag;
  if (!tidal::cli::read_kv_dtype_flag(args, &kv_flag)) return 2;
  if (!args.finish()) return 2;
  if (!model_dir || reps < 1 || tg < 0 || depth < 0) {
    args.error("--model is required; --reps >= 1, --gen-tokens >= 0, --depth >= 0");
    return 2;
  }
  auto pps = tidal::cli::parse_id_list(pp_text);
  if (!pps) return tidal::cli::fail(args, pps.status());
  auto model = tidal::Model::load(*model_dir, {.n_threads = threads, .quantization = quantization});
  if (!model) return tidal::cli::fail(args, model.status());
  const tidal::ModelConfig& c = (*model)->config();
  const tidal::DType kv_dtype = kv_flag.value_or((*model)->default_kv_dtype());
  auto ids_for = [&](int64_t n) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t((i * 7919 + 13) % c.vocab_size);
    return ids;
  };
  using clock = std::chrono::steady_clock;
  nlohmann::json results = nlohmann::json::array();
  std::vector<float> logits;
  auto report = [&](const std::string& test, int64_t n, const std::vector<double>& secs) {
    std::vector<double> tps;
    for (double s : secs) tps.push_back(double(n) / s);
    const double med = median(tps);
    const double mn = *std::min_element(tps.begin(), tps.end()), mx = *std::max_element(tps.begin(), tps.end());
    results.push_back({{"test", test}, {"tokens_per_second", med}, {"min", mn}, {"max", mx}, {"reps", secs.size()},
                       {"quantization", (*model)->quantization()},
                       {"matrix_bytes_per_token", (*model)->matrix_bytes_per_token()},
                       {"kv_dtype", tidal::dtype_name(kv_dtype)}, {"depth", depth}, {"threads", (*model)->pool().n_threads()}});
    if (!as_json) std::printf("%-14s %10.2f tok/s  (min %.2f, max %.2f, %zu reps)\n", test.c_str(), med, mn, mx, secs.size());
  };
  if (!as_json) {
    std::printf("model %s: %s, %lld layers, hidden %lld, weights %s, quantization %s (%.1f MiB of matrices per token), kernels %s, threads %d, KV %s, depth %lld\n",
                model_dir->c_str(), c.architecture.c_str(), (long long)c.n_layers, (long long)c.hidden_size,
                tidal::dtype_name((*model)->weight_dtype()), (*model)->quantization().c_str(),
                double((*model)->matrix_bytes_per_token()) / (1 << 20), tidal::kernels().name, (*model)->pool().n_threads(),
                tidal::dtype_name(kv_dtype), depth);
  }
  // One cache for every run: `depth` tokens written once (not timed); each run then writes its
  // new tokens after them, overwriting the previous run's.
  int64_t max_new = tg;
  for (int32_t pp : *pps) max_new = std::max<int64_t>(max_new, pp);
  tidal::KvCache cache(c, depth + std::max<int64_t>(max_new, 1), kv_dtype);
  if (depth > 0) {
    const auto depth_ids = ids_for(depth);
    tidal::Status st = (*model)->forward(std::vector<tidal::SequenceChunk>{{cache.slots(), depth_ids, false}}, &logits);
    if (!st.is_ok()) return tidal::cli::fail(args, st);
    cache.advance(depth);
  }
  auto slots_at = [&](int64_t n_past) {
    tidal::KvSlots s = cache.slots();
    s.n_past = n_past;
    return s;
  };
  const std::string at_depth = depth ? " @ d" + std::to_string(depth) : "";
  for (int32_t pp : *pps) {
    if (pp <= 0) continue;
    auto ids = ids_for(pp);
    std::vector<double> secs;
    for (long long r = 0; r <= reps; ++r) {
      const auto t0 = clock::now();
      tidal::Status st = (*model)->forward(std::vector<tidal::SequenceChunk>{{slots_at(depth), ids, false}}, &logits);
      if (!st.is_ok()) return tidal::cli::fail(args, st);
      if (r > 0) secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
    report("pp" + std::to_string(pp) + at_depth, pp, secs);
  }
  if (tg > 0) {
    auto ids = ids_for(tg);
    std::vector<double> secs;
    for (long long r = 0; r <= reps; ++r) {
      const auto t0 = clock::now();
      for (long long i = 0; i < tg; ++i) {
        tidal::Status st = (*model)->forward(
            std::vector<tidal::SequenceChunk>{{slots_at(depth + i), std::span(ids).subspan(size_t(i), 1), false}}, &logits);
        if (!st.is_ok()) return tidal::cli::fail(args, st);
      }
      if (r > 0) secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
    report("tg" + std::to_string(tg) + at_depth, tg, secs);
  }
  if (as_json) std::printf("%s\n", results.dump().c_str());
  return 0;
}

}  // namespace

TIDAL_COMMAND("bench", "prefill/decode throughput of a model (llama-bench style)", run_bench);
