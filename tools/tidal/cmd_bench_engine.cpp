// tidal bench-engine --model DIR --concurrency N --input-len I --output-len O [--requests R]:
// a closed-loop load on the engine: N requests in flight until R have completed. Reports TTFT,
// inter-token latency (p50/p99) and aggregate throughput.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "command.h"
#include "tidal/kernels/kernel_table.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal bench-engine --model DIR [--concurrency 16] [--input-len 128] [--output-len 128] [--requests R] [--shared-prefix P] [--json]
Closed-loop engine benchmark: keeps --concurrency requests in flight until --requests (default =
concurrency) have finished. Prompts are pseudo-random token ids (the first --shared-prefix of them
common to all requests, to exercise the prefix cache); generation ignores EOS and runs exactly
--output-len tokens, greedy. Reports TTFT and inter-token latency percentiles and throughput.
)";

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double idx = p / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(idx);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - double(lo));
}

int run_bench_engine(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s%s", kHelp, tidal::cli::kEngineFlagsHelp);
    return 0;
  }
  tidal::EngineConfig ec;
  if (!tidal::cli::read_engine_flags(args, &ec)) return 2;
  const long long conc = args.get_int("concurrency", 16);
  const long long in_len = args.get_int("input-len", 128);
  const long long out_len = args.get_int("output-len", 128);
  const long long n_req = args.get_int("requests", conc);
  const long long shared = args.get_int("shared-prefix", 0);
  const bool as_json = args.has("json");
  if (!args.finish()) return 2;
  if (ec.model_dir.empty() || conc < 1 || in_len < 1 || out_len < 1 || n_req < 1 || shared < 0 || shared > in_len) {
    args.error("--model is required; concurrency, input-len, output-len, requests >= 1; 0 <= shared-prefix <= input-len");
    return 2;
  }
  auto engine = tidal::Engine::create(ec);
  if (!engine) return tidal::cli::fail(args, engine.status());
  tidal::Engine& e = **engine;
  const int64_t V = e.model_config().vocab_size;
  using clock = std::chrono::steady_clock;
  struct Track {
    clock::time_point start, last;
    bool got_first = false;
  };
  std::map<tidal::RequestId, Track> live;
  std::vector<double> ttft, itl;
  long long submitted = 0, completed = 0;
  int64_t generated = 0;
  tidal::SamplingParams sp;
  sp.temperature = 0;
  sp.max_tokens = int32_t(out_len);
  sp.ignore_eos = true;
  sp.detokenize = false;
  auto submit = [&]() -> bool {
    std::vector<int32_t> prompt(static_cast<size_t>(in_len));
    for (long long i = 0; i < in_len; ++i) {
      const long long salt = i < shared ? 0 : submitted + 1;
      prompt[size_t(i)] = int32_t((i * 7919 + salt * 104729 + 17) % V);
    }
    auto id = e.add_request(prompt, sp);
    if (!id) {
      args.error(id.status().message());
      return false;
    }
    live[*id] = {clock::now(), {}, false};
    ++submitted;
    return true;
  };
  const auto t0 = clock::now();
  while (submitted < std::min(conc, n_req)) if (!submit()) return 1;
  while (e.has_unfinished()) {
    for (const auto& o : e.step()) {
      Track& t = live[o.id];
      const auto now = clock::now();
      if (!o.token_ids.empty()) {
        if (!t.got_first) {
          ttft.push_back(std::chrono::duration<double>(now - t.start).count());
          t.got_first = true;
        } else {
          itl.push_back(std::chrono::duration<double>(now - t.last).count() / double(o.token_ids.size()));
        }
        t.last = now;
        generated += int64_t(o.token_ids.size());
      }
      if (o.finished()) {
        live.erase(o.id);
        ++completed;
        if (submitted < n_req && !submit()) return 1;
      }
    }
  }
  const double wall = std::chrono::duration<double>(clock::now() - t0).count();
  const tidal::EngineStats st = e.stats();
  nlohmann::json j = {
      {"concurrency", conc}, {"input_len", in_len}, {"output_len", out_len}, {"requests", completed},
      {"wall_seconds", wall}, {"output_tokens_per_second", double(generated) / wall},
      {"total_tokens_per_second", double(generated + completed * in_len) / wall},
      {"ttft_ms_p50", 1e3 * pct(ttft, 50)}, {"ttft_ms_p99", 1e3 * pct(ttft, 99)},
      {"itl_ms_p50", 1e3 * pct(itl, 50)}, {"itl_ms_p99", 1e3 * pct(itl, 99)},
      {"prefix_hit_rate", st.prefix_hit_rate()}, {"preemptions", st.preemptions}, {"steps", st.steps},
      {"kernels", tidal::kernels().name}};
  // The first request to reach its first token fills the prefix cache; with --shared-prefix the
  // others should reach theirs in a fraction of its time (with --concurrency 1 they run one by one).
  std::vector<double> later(ttft.size() > 1 ? ttft.begin() + 1 : ttft.end(), ttft.end());
  if (!ttft.empty()) j["ttft_ms_first"] = 1e3 * ttft.front();
  if (!later.empty()) {
    j["ttft_ms_later_p50"] = 1e3 * pct(later, 50);
    j["ttft_later_over_first"] = pct(later, 50) / ttft.front();
  }
  if (as_json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%lld requests (%lld in / %lld out, concurrency %lld) in %.2f s, kernels %s\n", completed, in_len,
                out_len, conc, wall, tidal::kernels().name);
    std::printf("  output throughput  %10.2f tok/s   (prompt + output: %.2f tok/s)\n", j["output_tokens_per_second"].get<double>(),
                j["total_tokens_per_second"].get<double>());
    std::printf("  TTFT               p50 %8.1f ms   p99 %8.1f ms\n", j["ttft_ms_p50"].get<double>(), j["ttft_ms_p99"].get<double>());
    if (!later.empty()) {
      std::printf("  TTFT first request %8.1f ms; later requests p50 %.1f ms (%.3f of the first)\n",
                  j["ttft_ms_first"].get<double>(), j["ttft_ms_later_p50"].get<double>(),
                  j["ttft_later_over_first"].get<double>());
    }
    std::printf("  inter-token        p50 %8.1f ms   p99 %8.1f ms\n", j["itl_ms_p50"].get<double>(), j["itl_ms_p99"].get<double>());
    std::printf("  prefix hit rate %.3f, preemptions %lld, engine steps %lld\n", st.prefix_hit_rate(),
                (long long)st.preemptions, (long long)st.steps);
  }
  return 0;
}

}  // namespace

TIDAL_COMMAND("bench-engine", "engine throughput and latency under concurrent load", run_bench_engine);
