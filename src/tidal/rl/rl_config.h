// RlConfig: the `tidal rl CONFIG.toml` file (docs/rl.md). Plain data, parsed from TOML with
// toml++ and validated field by field (errors name the key: "grpo.lr: must be > 0").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tidal/core/status.h"

namespace tidal::rl {

struct RlConfig {
  struct Run {
    std::string dir = "runs/rl";    // outputs: metrics.jsonl, ledger.jsonl, curve.svg, checkpoints
    uint64_t seed = 1;
    int64_t trainer_threads = 0;    // 0: all cores
    int64_t engine_threads = 0;     // 0: all cores
  } run;
  struct Model {
    std::string path;               // a Hugging Face folder to start from; empty: initialise one
    // Initialised by Tidal (path empty): a Qwen3-shaped model with the byte-level tokenizer.
    int64_t layers = 4, hidden = 128, intermediate = 512, heads = 4, kv_heads = 4, max_position = 128;
    int64_t vocab = 259;            // 256 byte tokens + 3 special tokens: a character-level model
  } model;
  nlohmann::json env;               // the task's table (rollout/task.h make_task)
  struct Sft {
    int64_t steps = 0, batch = 64;  // 0 steps: no warm-up
    double lr = 2e-3;
    int64_t warmup_steps = 20;
  } sft;
  struct Grpo {
    int64_t steps = 100, prompts = 32, samples = 8;
    double temperature = 1.0, lr = 5e-4, clip = 0.2, kl_coef = 0.0, tis_cap = 2.0;
    int64_t max_policy_lag = 1;     // 0: synchronous (generate, then train)
    bool drop_uniform_groups = true;  // groups whose rewards are all equal carry no signal
    int64_t checkpoint_every = 50;  // steps (0: only at the end)
  } grpo;
  struct Eval {
    int64_t instances = 512, samples = 4, every = 25;  // every: GRPO steps between evaluations (0: start/end only)
    uint64_t seed = 7;
  } eval;
  struct Rollout {
    std::string backend = "engine";   // "engine" (in-process) or "http" (`tidal serve` instances)
    std::vector<std::string> urls;    // http: "http://host:port" of each instance
    std::string api_key;
    int64_t kv_cache_mib = 256, max_num_seqs = 256, max_num_batched_tokens = 4096;
    int64_t env_workers = 4;
  } rollout;
  struct Sandbox {
    // `tidal sandbox serve` hosts (tasks that run code), "http://host:port" each; one lease per
    // host per run. The file may give `url = "..."` instead (a one-element list), not both.
    std::vector<std::string> urls;
    std::string api_key;
    int64_t lease_ttl_s = 60;
  } sandbox;
};

// Parses and validates a TOML file. Errors name the file, line and key. `overrides` are
// "table.key=value" assignments applied on top (the CLI's --set), the value written as in TOML
// (a value that is not valid TOML is taken as a string: --set run.dir=/tmp/x).
Expected<RlConfig> load_rl_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from TOML text (`where` names it in errors).
Expected<RlConfig> parse_rl_config(const std::string& toml_text, const std::string& where = "config",
                                   const std::vector<std::string>& overrides = {});

}  // namespace tidal::rl
