// tidal score --model DIR --token-ids 1,2,3 [--top K] [--json]: per-position log-probabilities.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli_util.h"
#include "command.h"
#include "tidal/kernels/ops.h"
#include "tidal/model/model.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal score --model DIR --token-ids 1,2,3 [--top K] [--json] [--threads N] [--quantization F]
Scores a token sequence: for each position i, log p(ids[i+1] | ids[..i]) and the K most likely
next tokens (natural-log softmax over the full vocabulary). --json prints one JSON array:
  [{"position": i, "next_id": .., "next_logprob": .., "top": [[id, logprob], ...]}, ...]
(the last element has no next_id / next_logprob).
)";

int run_score(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s%s", kHelp, tidal::cli::kQuantizationFlagsHelp);
    return 0;
  }
  const auto model_dir = args.get("model");
  const auto ids_text = args.get("token-ids");
  const long long top = args.get_int("top", 5);
  const bool as_json = args.has("json");
  const int threads = tidal::cli::threads_flag(args);
  tidal::QuantizationOptions quantization;
  if (!tidal::cli::read_quantization_flags(args, &quantization)) return 2;
  if (!args.finish()) return 2;
  if (!model_dir || !ids_text) {
    args.error("--model and --token-ids are required (see --help)");
    return 2;
  }
  auto ids = tidal::cli::parse_id_list(*ids_text);
  if (!ids) return tidal::cli::fail(args, ids.status());
  auto model = tidal::Model::load(*model_dir, {.n_threads = threads, .quantization = quantization});
  if (!model) return tidal::cli::fail(args, model.status());
  const tidal::ModelConfig& c = (*model)->config();
  const int64_t V = c.vocab_size;
  const int64_t K = std::clamp<long long>(top, 0, V);

  // Scoring keeps K/V in F32 whatever the weights: it is the reference path.
  tidal::KvCache cache(c, int64_t(ids->size()), tidal::DType::kF32);
  std::vector<float> logits;
  tidal::SequenceChunk chunk{cache.slots(), *ids, true};
  tidal::Status st = (*model)->forward({&chunk, 1}, &logits);
  if (!st.is_ok()) return tidal::cli::fail(args, st);

  nlohmann::json out = nlohmann::json::array();
  std::vector<float> lp(static_cast<size_t>(V));
  std::vector<int32_t> order(static_cast<size_t>(V));
  for (size_t i = 0; i < ids->size(); ++i) {
    tidal::ops::log_softmax(logits.data() + int64_t(i) * V, lp.data(), V);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t a, int32_t b) {
      return lp[size_t(a)] > lp[size_t(b)] || (lp[size_t(a)] == lp[size_t(b)] && a < b);
    });
    nlohmann::json e = {{"position", i}};
    if (i + 1 < ids->size()) {
      e["next_id"] = (*ids)[i + 1];
      e["next_logprob"] = lp[size_t((*ids)[i + 1])];
    }
    nlohmann::json topk = nlohmann::json::array();
    for (int64_t r = 0; r < K; ++r) topk.push_back({order[size_t(r)], lp[size_t(order[size_t(r)])]});
    e["top"] = std::move(topk);
    out.push_back(std::move(e));
  }
  if (as_json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%-8s %-10s %-12s %s\n", "position", "next_id", "next_logp", "top");
    for (const auto& e : out) {
      std::string topk;
      for (const auto& t : e["top"]) topk += std::to_string(t[0].get<int>()) + ":" + std::to_string(t[1].get<double>()) + " ";
      if (e.contains("next_id")) {
        std::printf("%-8d %-10d %-12.5f %s\n", e["position"].get<int>(), e["next_id"].get<int>(),
                    e["next_logprob"].get<double>(), topk.c_str());
      } else {
        std::printf("%-8d %-10s %-12s %s\n", e["position"].get<int>(), "-", "-", topk.c_str());
      }
    }
  }
  return 0;
}

}  // namespace

TIDAL_COMMAND("score", "log-probabilities of a token sequence (teacher forcing)", run_score);
