// tidal generate --model DIR (--prompt TEXT | --token-ids ...) --max-tokens N [--temperature T]
// [--seed S] [--json]: the simplest text generation loop (one sequence, contiguous KV cache).
// The serving engine (paged cache, batching, full sampler) lives in src/tidal/engine.
#include <algorithm>
#include <chrono>
#include <optional>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "command.h"
#include "tidal/core/cpu_features.h"
#include "tidal/kernels/kernel_table.h"
#include "tidal/kernels/ops.h"
#include "tidal/model/model.h"
#include "tidal/tokenizer/incremental_decoder.h"
#include "tidal/tokenizer/tokenizer.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal generate --model DIR (--prompt TEXT | --token-ids 1,2,3) [flags]
Generates text from a prompt, printing it as it is produced.
  --max-tokens N      tokens to generate (default 32)
  --temperature T     0 = greedy (default); > 0 samples from softmax(logits / T)
  --seed S            sampling seed (default 0); the same seed gives the same tokens
  --ignore-eos        keep going past end-of-sequence tokens
  --json              print one JSON object instead: prompt_ids, ids, text, logprobs
                      (logprobs: natural-log softmax of the model's raw logits, i.e. before
                      temperature, of each generated token), and timings
  --threads N         compute threads (default: all cores)
)";

// Counter-based: the uniform for (seed, step) does not depend on anything else.
double uniform(uint64_t seed, uint64_t step) {
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + step * 0xbf58476d1ce4e5b9ull + 0x94d049bb133111ebull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);
}

int32_t pick(const float* logits, int64_t V, double temperature, uint64_t seed, uint64_t step) {
  int32_t best = 0;
  for (int64_t i = 1; i < V; ++i) if (logits[i] > logits[best]) best = int32_t(i);
  if (temperature <= 0) return best;
  double sum = 0;
  std::vector<double> p(static_cast<size_t>(V));
  for (int64_t i = 0; i < V; ++i) sum += p[size_t(i)] = std::exp((double(logits[i]) - logits[best]) / temperature);
  double u = uniform(seed, step) * sum;
  for (int64_t i = 0; i < V; ++i) {
    u -= p[size_t(i)];
    if (u < 0) return int32_t(i);
  }
  return best;
}

int run_generate(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const auto model_dir = args.get("model");
  const auto prompt = args.get("prompt");
  const auto ids_text = args.get("token-ids");
  const long long max_tokens = args.get_int("max-tokens", 32);
  const double temperature = args.get_double("temperature", 0.0);
  const uint64_t seed = uint64_t(args.get_int("seed", 0));
  const bool ignore_eos = args.has("ignore-eos");
  const bool as_json = args.has("json");
  const int threads = tidal::cli::threads_flag(args);
  if (!args.finish()) return 2;
  if (!model_dir || (!prompt && !ids_text) || (prompt && ids_text)) {
    args.error("--model and one of --prompt / --token-ids are required (see --help)");
    return 2;
  }
  if (max_tokens < 1 || temperature < 0 || !std::isfinite(temperature)) {
    args.error("--max-tokens must be >= 1 and --temperature >= 0");
    return 2;
  }
  auto model = tidal::Model::load(*model_dir, {.n_threads = threads});
  if (!model) return tidal::cli::fail(args, model.status());
  const tidal::ModelConfig& c = (*model)->config();
  auto tok = tidal::Tokenizer::load(*model_dir);
  if (!tok && prompt) return tidal::cli::fail(args, tok.status());

  std::vector<int32_t> prompt_ids;
  if (prompt) {
    prompt_ids = tok->encode(*prompt);
  } else {
    auto ids = tidal::cli::parse_id_list(*ids_text);
    if (!ids) return tidal::cli::fail(args, ids.status());
    prompt_ids = std::move(ids).value();
  }
  if (prompt_ids.empty()) {
    args.error("the prompt encodes to no tokens");
    return 2;
  }
  std::vector<int32_t> eos = c.eos_token_ids;
  if (tok && tok->eos_id()) eos.push_back(*tok->eos_id());
  auto is_eos = [&](int32_t id) { return std::find(eos.begin(), eos.end(), id) != eos.end(); };

  const int64_t V = c.vocab_size;
  tidal::KvCache cache(c, int64_t(prompt_ids.size()) + max_tokens, (*model)->default_kv_dtype());
  std::vector<float> logits, lp(static_cast<size_t>(V));
  std::vector<int32_t> out_ids;
  std::vector<float> out_lp;
  std::optional<tidal::IncrementalDecoder> dec;
  if (tok) dec.emplace(*tok, /*skip_special_tokens=*/true);
  std::string text;

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  tidal::Status st = (*model)->forward(std::vector<tidal::SequenceChunk>{{cache.slots(), prompt_ids, false}}, &logits);
  if (st.is_ok()) cache.advance(int64_t(prompt_ids.size()));
  const auto t_prefill = clock::now();
  for (long long step = 0; st.is_ok() && step < max_tokens; ++step) {
    const int32_t next = pick(logits.data(), V, temperature, seed, uint64_t(step));
    tidal::ops::log_softmax(logits.data(), lp.data(), V);
    out_ids.push_back(next);
    out_lp.push_back(lp[size_t(next)]);
    if (dec) {
      std::string piece = dec->feed(next);
      text += piece;
      if (!as_json) { std::fputs(piece.c_str(), stdout); std::fflush(stdout); }
    }
    if (!ignore_eos && is_eos(next)) break;
    if (step + 1 == max_tokens) break;
    st = (*model)->forward(std::vector<tidal::SequenceChunk>{{cache.slots(), std::span(&out_ids.back(), 1), false}}, &logits);
    if (st.is_ok()) cache.advance(1);
  }
  if (!st.is_ok()) return tidal::cli::fail(args, st);
  const auto t_end = clock::now();
  if (dec) {
    std::string rest = dec->finish();
    text += rest;
    if (!as_json) std::fputs(rest.c_str(), stdout);
  }
  const double prefill_s = std::chrono::duration<double>(t_prefill - t0).count();
  const double decode_s = std::chrono::duration<double>(t_end - t_prefill).count();
  if (as_json) {
    nlohmann::json j = {{"prompt_ids", prompt_ids}, {"ids", out_ids}, {"logprobs", out_lp},
                        {"prefill_seconds", prefill_s}, {"decode_seconds", decode_s}};
    if (tok) j["text"] = text;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (!tok) {
      for (int32_t id : out_ids) std::printf("%d ", id);
    }
    std::printf("\n");
    std::fprintf(stderr, "[tidal generate] %zu prompt tokens in %.3f s (%.1f tok/s), %zu generated in %.3f s (%.1f tok/s), kernels %s\n",
                 prompt_ids.size(), prefill_s, double(prompt_ids.size()) / prefill_s, out_ids.size(), decode_s,
                 out_ids.size() > 1 ? double(out_ids.size() - 1) / decode_s : 0.0, tidal::kernels().name);
  }
  return 0;
}

}  // namespace

TIDAL_COMMAND("generate", "generate text from a prompt (greedy or sampled)", run_generate);
