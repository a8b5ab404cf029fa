// tidal rl bench-step / bench-sync: trainer step throughput and weight-sync bandwidth (timings for
// bench/trainer_compare.sh and docs/benchmarks.md; never used by tests).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "cli_util.h"
#include "command.h"
#include "rl_commands.h"
#include "tidal/engine/engine.h"
#include "tidal/rl/blas_check.h"
#include "tidal/rl/trainer.h"
#include "tidal/rl/weight_sync.h"

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

constexpr const char* kStepHelp = R"(usage: tidal rl bench-step --model DIR [--kind sft|grpo] [--batch N] [--seq-len T] [--prompt-len P] [--steps S] [--warmup W] [--threads N] [--micro-batch M]
Times trainer steps on random token batches (batch x seq-len tokens; GRPO: prompt-len prompt
tokens, rewards random in groups of 8, on-policy). Prints one JSON line: steps/s, tokens/s.
)";

int run_bench_step(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kStepHelp);
    return 0;
  }
  const auto model = args.get("model");
  const std::string kind = args.get_or("kind", "sft");
  const long long batch = args.get_int("batch", 64), T = args.get_int("seq-len", 24);
  const long long P = args.get_int("prompt-len", 8), steps = args.get_int("steps", 10), warmup = args.get_int("warmup", 2);
  const long long micro = args.get_int("micro-batch", 0);
  const int threads = tidal::cli::threads_flag(args);
  if (!args.finish()) return 2;
  if (!model || (kind != "sft" && kind != "grpo") || batch < 1 || T < 2 || P < 1 || P >= T || steps < 1) {
    args.error("--model is required; --kind sft|grpo; --batch >= 1, --seq-len >= 2, 1 <= --prompt-len < --seq-len");
    return 2;
  }
  tidal::rl::TrainerConfig c;
  c.model_dir = *model;
  c.n_threads = threads;
  c.micro_batch_seqs = micro;
  c.optimizer.lr = 1e-4;
  auto trainer = tidal::rl::Trainer::create(c);
  if (!trainer) return tidal::cli::fail(args, trainer.status());
  const int64_t V = (*trainer)->model_config().vocab_size;
  std::mt19937 rng(1);
  auto seq = [&] {
    std::vector<int32_t> s(static_cast<size_t>(T));
    for (auto& t : s) t = int32_t(rng() % uint32_t(V));
    return s;
  };
  tidal::rl::SftBatch sft;
  tidal::rl::GrpoBatch grpo;
  for (long long i = 0; i < batch; ++i) {
    if (kind == "sft") sft.sequences.push_back({seq(), {}});
    else {
      tidal::rl::GrpoSample g;
      g.tokens = seq();
      g.n_prompt = int32_t(P);
      g.reward = float(rng() % 2);
      g.group = int32_t(i / 8);
      grpo.samples.push_back(std::move(g));
    }
  }
  double loss = 0;
  clock_type::time_point t0;
  for (long long i = 0; i < warmup + steps; ++i) {
    if (i == warmup) t0 = clock_type::now();
    auto s = kind == "sft" ? (*trainer)->sft_step(sft) : (*trainer)->grpo_step(grpo);
    if (!s) return tidal::cli::fail(args, s.status());
    loss = s->loss;
  }
  const double secs = since(t0);
  const nlohmann::json out = {{"impl", "tidal"},
                              {"kind", kind},
                              {"params", (*trainer)->n_parameters()},
                              {"batch", batch},
                              {"seq_len", T},
                              {"steps_per_s", double(steps) / secs},
                              {"tokens_per_s", double(steps * batch * T) / secs},
                              {"matmul_gflops", tidal::rl::check_blas_speed().gflops},
                              {"last_loss", loss}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

constexpr const char* kSyncHelp = R"(usage: tidal rl bench-sync --model DIR [--dtype bf16|f16|f32] [--bucket SIZE] [--no-reuse] [--reps N] [--threads N] [--server HOST:PORT]
Weight-sync bandwidth: trainer (F32, loaded from DIR) -> an in-process engine (loaded from DIR),
or -> a running `tidal serve` with --server. --bucket: staging buffer (default 0: convert into the
mapped segment); --no-reuse: a fresh segment per sync. Before each sync it times one memcpy of
1 GiB (one thread), the machine's copy bandwidth. Prints one JSON line: the best sync and the best
memcpy of --reps (default 4) and their ratio, and ratio_median_of_pairs, the median over the
syncs after the first (which may allocate the segments) of sync GB/s / the memcpy just before it.
)";

// One thread's memcpy of 1 GiB (buffers touched beforehand), in GB/s.
struct MemcpyProbe {
  static constexpr size_t kBytes = 1ull << 30;
  std::vector<char> a = std::vector<char>(kBytes, 1), b = std::vector<char>(kBytes, 0);
  double gbps() {
    const auto t0 = clock_type::now();
    std::memcpy(b.data(), a.data(), kBytes);
    return double(kBytes) / since(t0) / 1e9;
  }
};

int run_bench_sync(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kSyncHelp);
    return 0;
  }
  const auto model = args.get("model");
  const std::string dtype_name = args.get_or("dtype", "bf16");
  const std::string bucket_text = args.get_or("bucket", "0");
  const bool no_reuse = args.has("no-reuse");
  const long long reps = args.get_int("reps", 4);
  const int threads = tidal::cli::threads_flag(args);
  const std::string server = args.get_or("server", "");
  if (!args.finish()) return 2;
  auto dtype = tidal::dtype_from_name(dtype_name);
  auto bucket = bucket_text == "0" ? tidal::Expected<uint64_t>(uint64_t(0)) : tidal::cli::parse_bytes(bucket_text);
  if (!model || !dtype || !bucket || reps < 1) {
    args.error("--model is required; --dtype bf16|f16|f32; --bucket SIZE; --reps >= 1");
    return 2;
  }
  tidal::rl::TrainerConfig c;
  c.model_dir = *model;
  c.n_threads = threads;
  auto trainer = tidal::rl::Trainer::create(c);
  if (!trainer) return tidal::cli::fail(args, trainer.status());
  tidal::rl::WeightSyncOptions o;
  o.dtype = *dtype;
  o.bucket_bytes = *bucket;
  o.reuse_segments = !no_reuse;
  tidal::rl::WeightSync sync(o);
  std::unique_ptr<tidal::Engine> engine;
  std::string host;
  uint16_t port = 0;
  if (server.empty()) {
    tidal::EngineConfig ec;
    ec.model_dir = *model;
    ec.n_threads = threads;
    ec.kv_cache_bytes = 64ull << 20;
    auto e = tidal::Engine::create(ec);
    if (!e) return tidal::cli::fail(args, e.status());
    engine = std::move(e).value();
  } else {
    const size_t colon = server.rfind(':');
    if (colon == std::string::npos) {
      args.error("--server must be HOST:PORT");
      return 2;
    }
    host = server.substr(0, colon);
    port = uint16_t(std::stoi(server.substr(colon + 1)));
  }
  double best_total = 1e30, best_write = 0, best_load = 0, best_mem = 0;
  uint64_t bytes = 0;
  // memcpy and sync alternate, so that both see the same machine (other load, frequency): the
  // ratio of each pair is kept, and the median of those is the figure to quote.
  MemcpyProbe probe;
  std::vector<double> pair_ratios;
  for (long long r = 0; r < reps; ++r) {
    const double mem = probe.gbps();
    best_mem = std::max(best_mem, mem);
    const auto t0 = clock_type::now();
    auto rep = engine ? sync.to_engine(**trainer, *engine, uint64_t(r + 1))
                      : sync.to_server(**trainer, host, port, uint64_t(r + 1));
    if (!rep) return tidal::cli::fail(args, rep.status());
    const double total = since(t0);
    bytes = rep->bytes;
    if (r > 0 || reps == 1) pair_ratios.push_back(double(bytes) / total / 1e9 / mem);  // the first may allocate
    if (total < best_total) best_total = total, best_write = rep->write_seconds, best_load = rep->load_seconds;
  }
  std::sort(pair_ratios.begin(), pair_ratios.end());
  const size_t np = pair_ratios.size();
  const double median_ratio = np % 2 ? pair_ratios[np / 2] : (pair_ratios[np / 2 - 1] + pair_ratios[np / 2]) / 2;
  const double mem = best_mem;
  const nlohmann::json out = {{"target", engine ? "in-process engine" : "tidal serve " + server},
                              {"dtype", tidal::dtype_name(*dtype)},
                              {"reuse_segments", !no_reuse},
                              {"bucket_bytes", *bucket},
                              {"bytes", bytes},
                              {"params", (*trainer)->n_parameters()},
                              {"seconds", best_total},
                              {"write_seconds", best_write},
                              {"load_seconds", best_load},
                              {"gb_per_s", double(bytes) / best_total / 1e9},
                              {"memcpy_gb_per_s", mem},
                              {"ratio_to_memcpy", double(bytes) / best_total / 1e9 / mem},
                              {"ratio_median_of_pairs", median_ratio}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

TIDAL_COMMAND(tidal::cli::rl_commands::kBenchStep.name, tidal::cli::rl_commands::kBenchStep.summary, run_bench_step);
TIDAL_COMMAND(tidal::cli::rl_commands::kBenchSync.name, tidal::cli::rl_commands::kBenchSync.summary, run_bench_sync);
