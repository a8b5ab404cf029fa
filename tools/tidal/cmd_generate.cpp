// tidal generate --model DIR (--prompt TEXT | --token-ids ...) --max-tokens N [--temperature T]
// [--seed S] [--json]: one request through the engine, printed as it is produced.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "command.h"
#include "tidal/kernels/kernel_table.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal generate --model DIR (--prompt TEXT | --token-ids 1,2,3) [flags]
Generates text from a prompt through the engine, printing it as it is produced.
  --max-tokens N      tokens to generate (default 32)
  --temperature T     0 = greedy (default); > 0 samples from softmax(logits / T)
  --top-k K, --top-p P, --min-p P, --repetition-penalty R   sampling filters / penalties
  --seed S            sampling seed (default 0); the same seed gives the same tokens
  --stop STR          stop string (not included in the output)
  --ignore-eos        keep going past end-of-sequence tokens
  --json              print one JSON object instead: prompt_ids, ids, text, logprobs
                      (logprobs: natural-log softmax of the model's raw logits, i.e. before
                      temperature, of each generated token), finish_reason and timings
)";

int run_generate(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s%s", kHelp, tidal::cli::kEngineFlagsHelp);
    return 0;
  }
  tidal::EngineConfig ec;
  if (!tidal::cli::read_engine_flags(args, &ec)) return 2;
  const auto prompt = args.get("prompt");
  const auto ids_text = args.get("token-ids");
  tidal::SamplingParams sp;
  sp.max_tokens = int32_t(args.get_int("max-tokens", 32));
  sp.temperature = args.get_double("temperature", 0.0);
  sp.top_k = int32_t(args.get_int("top-k", -1));
  sp.top_p = args.get_double("top-p", 1.0);
  sp.min_p = args.get_double("min-p", 0.0);
  sp.repetition_penalty = args.get_double("repetition-penalty", 1.0);
  sp.seed = uint64_t(args.get_int("seed", 0));
  if (auto stop = args.get("stop")) sp.stop.push_back(*stop);
  sp.ignore_eos = args.has("ignore-eos");
  const bool as_json = args.has("json");
  if (!args.finish()) return 2;
  if (ec.model_dir.empty() || (!prompt && !ids_text) || (prompt && ids_text)) {
    args.error("--model and one of --prompt / --token-ids are required (see --help)");
    return 2;
  }
  if (ec.kv_cache_bytes == (1ull << 30)) ec.kv_cache_bytes = 256ull << 20;  // one request needs little
  auto engine = tidal::Engine::create(ec);
  if (!engine) return tidal::cli::fail(args, engine.status());
  tidal::Engine& e = **engine;
  std::vector<int32_t> prompt_ids;
  if (prompt) {
    if (!e.tokenizer()) {
      args.error(ec.model_dir + ": no tokenizer.json, so --prompt cannot be encoded (use --token-ids)");
      return 1;
    }
    prompt_ids = e.tokenizer()->encode(*prompt);
  } else {
    auto ids = tidal::cli::parse_id_list(*ids_text);
    if (!ids) return tidal::cli::fail(args, ids.status());
    prompt_ids = std::move(ids).value();
  }
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto id = e.add_request(prompt_ids, sp);
  if (!id) return tidal::cli::fail(args, id.status());
  std::vector<int32_t> out_ids;
  std::vector<float> out_lp;
  std::string text;
  std::string finish;
  clock::time_point t_first{};
  while (e.has_unfinished()) {
    for (const auto& o : e.step()) {
      if (!o.token_ids.empty() && out_ids.empty()) t_first = clock::now();
      out_ids.insert(out_ids.end(), o.token_ids.begin(), o.token_ids.end());
      for (const auto& lp : o.logprobs) out_lp.push_back(lp.logprob);
      text += o.text;
      if (!as_json && !o.text.empty()) {
        std::fputs(o.text.c_str(), stdout);
        std::fflush(stdout);
      }
      if (o.finished()) finish = tidal::finish_reason_name(o.finish);
    }
  }
  const auto t_end = clock::now();
  const double prefill_s = std::chrono::duration<double>(t_first - t0).count();
  const double decode_s = std::chrono::duration<double>(t_end - t_first).count();
  if (as_json) {
    nlohmann::json j = {{"prompt_ids", prompt_ids}, {"ids", out_ids}, {"logprobs", out_lp},
                        {"finish_reason", finish}, {"prefill_seconds", prefill_s}, {"decode_seconds", decode_s}};
    if (e.tokenizer()) j["text"] = text;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (!e.tokenizer()) {
      for (int32_t t : out_ids) std::printf("%d ", t);
    }
    std::printf("\n");
    std::fprintf(stderr,
                 "[tidal generate] %zu prompt tokens in %.3f s (%.1f tok/s); %zu generated in %.3f s (%.1f tok/s); "
                 "finish: %s; kernels %s\n",
                 prompt_ids.size(), prefill_s, double(prompt_ids.size()) / prefill_s, out_ids.size(), decode_s,
                 out_ids.size() > 1 ? double(out_ids.size() - 1) / decode_s : 0.0, finish.c_str(), tidal::kernels().name);
  }
  return 0;
}

}  // namespace

TIDAL_COMMAND("generate", "generate text from a prompt (through the engine)", run_generate);
