// tidal rl align --model DIR --tokens FILE [--engine-dtype f32|bf16]: engine vs trainer logprobs.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_util.h"
#include "command.h"
#include "rl_commands.h"
#include "tidal/model/model.h"
#include "tidal/rl/alignment.h"
#include "tidal/rl/trainer.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal rl align --model DIR --tokens FILE [--engine-dtype f32|bf16] [--kv-dtype f32|bf16] [--emulate-engine] [--threads N]
Train/inference alignment: runs the same token sequences through the trainer (libtorch, F32) and
the inference engine's forward pass, and compares the next-token log-probabilities.
  --model DIR            Hugging Face model folder (F32, F16 or BF16 weights)
  --tokens FILE          JSON array of token-id arrays, e.g. [[1,2,3],[4,5,6,7]]
  --engine-dtype D       the engine's weights and KV cache: f32 (default) or bf16 (the trainer's
                         F32 weights rounded, as a weight sync to a BF16 engine does)
  --kv-dtype D           the engine's KV cache dtype (default: the engine dtype)
  --emulate-engine       the trainer rounds its weights and K/V to the engine's dtypes in the
                         forward pass (TrainerConfig::emulate_*; straight-through gradients)
  --threads N            engine and trainer threads (default: all cores)
Prints mean and max |delta logprob| over the actual next tokens and the mean token-level
KL(engine || trainer) over the full vocabulary; the last stdout line is one JSON object:
  {"mean_abs_delta": .., "max_abs_delta": .., "kl": .., "tokens": ..}
)";

tidal::Expected<std::vector<std::vector<int32_t>>> read_sequences(const std::string& path) {
  std::ifstream in(path);
  if (!in) return tidal::not_found(path + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return tidal::invalid_argument(path + ": not valid JSON");
  if (!j.is_array() || j.empty()) return tidal::invalid_argument(path + ": expected a non-empty JSON array of token-id arrays");
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string where = path + ": sequence " + std::to_string(i);
    if (!j[i].is_array()) return tidal::invalid_argument(where + " is not an array of token ids");
    if (j[i].size() < 2) return tidal::invalid_argument(where + " has fewer than 2 tokens");
    std::vector<int32_t> seq;
    for (const auto& t : j[i]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX) {
        return tidal::invalid_argument(where + " holds " + t.dump() + ", not a token id");
      }
      seq.push_back(t.get<int32_t>());
    }
    out.push_back(std::move(seq));
  }
  return out;
}

int run_rl_align(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const auto model_dir = args.get("model");
  const auto tokens_path = args.get("tokens");
  const std::string dtype_name = args.get_or("engine-dtype", "f32");
  const auto kv_name = args.get("kv-dtype");
  const bool emulate = args.has("emulate-engine");
  const int threads = tidal::cli::threads_flag(args);
  if (!args.finish()) return 2;
  if (!model_dir || !tokens_path) {
    args.error("--model and --tokens are required (see --help)");
    return 2;
  }
  tidal::DType dtype;
  if (dtype_name == "f32") dtype = tidal::DType::kF32;
  else if (dtype_name == "bf16") dtype = tidal::DType::kBF16;
  else {
    args.error("--engine-dtype must be f32 or bf16, got '" + dtype_name + "'");
    return 2;
  }
  tidal::DType kv_dtype = dtype;
  if (kv_name) {
    if (*kv_name == "f32") kv_dtype = tidal::DType::kF32;
    else if (*kv_name == "bf16") kv_dtype = tidal::DType::kBF16;
    else {
      args.error("--kv-dtype must be f32 or bf16, got '" + *kv_name + "'");
      return 2;
    }
  }
  auto sequences = read_sequences(*tokens_path);
  if (!sequences) return tidal::cli::fail(args, sequences.status());

  tidal::rl::TrainerConfig config;
  config.model_dir = *model_dir;
  config.n_threads = threads;
  if (emulate) {
    config.emulate_weight_dtype = dtype;
    config.emulate_kv_dtype = kv_dtype;
  }
  auto trainer = tidal::rl::Trainer::create(config);
  if (!trainer) return tidal::cli::fail(args, trainer.status());
  // The engine gets the trainer's weights in its dtype, through the format a weight sync uses.
  namespace fs = std::filesystem;
  const fs::path shm = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  const fs::path engine_dir = shm / ("tidal-align-" + std::to_string(::getpid()));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{engine_dir};
  tidal::Status st = (*trainer)->save_model(engine_dir.string(), dtype);
  if (!st.is_ok()) return tidal::cli::fail(args, st);
  auto model = tidal::Model::load(engine_dir.string(), {.n_threads = threads, .quantization = {}});
  if (!model) return tidal::cli::fail(args, model.status());

  auto r = tidal::rl::measure_alignment(**trainer, **model, kv_dtype, *sequences);
  if (!r) return tidal::cli::fail(args, r.status());
  auto name = [](tidal::DType d) { return d == tidal::DType::kF32 ? "F32" : "BF16"; };
  std::printf("model %s: engine weights %s, KV %s; trainer F32%s: %zu sequences, %lld scored tokens\n",
              model_dir->c_str(), name(dtype), name(kv_dtype), emulate ? " emulating the engine's roundings" : "",
              sequences->size(), static_cast<long long>(r->tokens));
  std::printf("|delta logprob|  mean %.3e  max %.3e (sequence %lld, token %lld)\n", r->mean_abs_delta,
              r->max_abs_delta, static_cast<long long>(r->worst_sequence), static_cast<long long>(r->worst_position));
  std::printf("KL(engine || trainer) per token  mean %.3e  max %.3e\n", r->kl, r->max_kl);
  const nlohmann::json out = {{"mean_abs_delta", r->mean_abs_delta},
                              {"max_abs_delta", r->max_abs_delta},
                              {"kl", r->kl},
                              {"tokens", r->tokens}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

TIDAL_COMMAND(tidal::cli::rl_commands::kAlign.name, tidal::cli::rl_commands::kAlign.summary, run_rl_align);
