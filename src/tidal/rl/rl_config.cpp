#include "tidal/rl/rl_config.h"

#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "tidal/http/json_fields.h"
#include "tidal/rollout/sandbox_client.h"

namespace tidal::rl {
namespace {

Status read_table(const nlohmann::json& root, const char* name, const std::function<void(http::JsonFields&)>& fn) {
  auto it = root.find(name);
  if (it == root.end()) return Status::ok();
  if (!it->is_object()) return invalid_argument(std::string(name) + ": expected a table");
  http::JsonFields f(*it, name);
  fn(f);
  f.reject_unknown();
  return f.status();
}

Status positive(const std::string& key, double v) {
  return v > 0 ? Status::ok() : invalid_argument(key + ": must be > 0");
}

Status validate(const RlConfig& c) {
  const std::pair<const char*, double> pos[] = {
      {"model.layers", double(c.model.layers)},   {"model.hidden", double(c.model.hidden)},
      {"model.heads", double(c.model.heads)},     {"model.kv_heads", double(c.model.kv_heads)},
      {"model.intermediate", double(c.model.intermediate)}, {"model.max_position", double(c.model.max_position)},
      {"sft.batch", double(c.sft.batch)},         {"sft.lr", c.sft.lr},
      {"grpo.prompts", double(c.grpo.prompts)},   {"grpo.samples", double(c.grpo.samples)},
      {"grpo.lr", c.grpo.lr},                     {"grpo.clip", c.grpo.clip},
      {"eval.instances", double(c.eval.instances)}, {"rollout.kv_cache_mib", double(c.rollout.kv_cache_mib)},
      {"rollout.max_num_seqs", double(c.rollout.max_num_seqs)},
      {"rollout.max_num_batched_tokens", double(c.rollout.max_num_batched_tokens)},
      {"rollout.env_workers", double(c.rollout.env_workers)}, {"sandbox.lease_ttl_s", double(c.sandbox.lease_ttl_s)}};
  for (const auto& [k, v] : pos)
    if (auto s = positive(k, v); !s.is_ok()) return s;
  const std::pair<const char*, double> nonneg[] = {
      {"sft.steps", double(c.sft.steps)}, {"grpo.steps", double(c.grpo.steps)},
      {"grpo.max_policy_lag", double(c.grpo.max_policy_lag)}, {"grpo.checkpoint_every", double(c.grpo.checkpoint_every)},
      {"grpo.kl_coef", c.grpo.kl_coef}, {"grpo.tis_cap", c.grpo.tis_cap}, {"grpo.temperature", c.grpo.temperature},
      {"eval.samples", double(c.eval.samples)}, {"eval.every", double(c.eval.every)},
      {"run.trainer_threads", double(c.run.trainer_threads)}, {"run.engine_threads", double(c.run.engine_threads)},
      {"sft.warmup_steps", double(c.sft.warmup_steps)}};
  for (const auto& [k, v] : nonneg)
    if (v < 0) return invalid_argument(std::string(k) + ": must be >= 0");
  if (c.model.hidden % c.model.heads) return invalid_argument("model.hidden: must be a multiple of model.heads");
  if (c.model.heads % c.model.kv_heads) return invalid_argument("model.kv_heads: must divide model.heads");
  if (c.model.vocab < 259) return invalid_argument("model.vocab: must be >= 259 (the byte-level tokenizer)");
  if (c.grpo.samples > 4096) return invalid_argument("grpo.samples: at most 4096");
  if (c.grpo.max_policy_lag > 64) return invalid_argument("grpo.max_policy_lag: at most 64");
  if (c.run.dir.empty()) return invalid_argument("run.dir: must not be empty");
  if (c.rollout.backend != "engine" && c.rollout.backend != "http")
    return invalid_argument("rollout.backend: must be \"engine\" or \"http\"");
  if (c.rollout.backend == "http" && c.rollout.urls.empty())
    return invalid_argument("rollout.urls: the http backend needs at least one `tidal serve` URL");
  if (c.env.is_null()) return invalid_argument("env: the [env] table is required (env.name = \"count-letters\", ...)");
  std::set<std::string> hosts;
  for (size_t i = 0; i < c.sandbox.urls.size(); ++i) {
    const std::string key = "sandbox.urls[" + std::to_string(i) + "]";
    auto u = rollout::parse_sandbox_url(c.sandbox.urls[i]);
    if (!u) return invalid_argument(key + ": " + u.status().message());
    if (!hosts.insert(u->text()).second)
      return invalid_argument(key + ": '" + c.sandbox.urls[i] + "' is listed twice (one lease per host)");
  }
  return Status::ok();
}

}  // namespace

Status apply_override(toml::table& tbl, const std::string& assignment) {
  const size_t eq = assignment.find('='), dot = assignment.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq)
    return invalid_argument("--set " + assignment + ": expected table.key=value");
  const std::string table = assignment.substr(0, dot), key = assignment.substr(dot + 1, eq - dot - 1);
  const std::string value = assignment.substr(eq + 1);
  toml::node_view<toml::node> slot = tbl[table];
  if (!slot) tbl.insert(table, toml::table{});
  toml::table* t = tbl[table].as_table();
  if (!t) return invalid_argument("--set " + assignment + ": [" + table + "] is not a table");
  // sandbox.url and sandbox.urls are two spellings of one setting: setting one drops the other.
  if (table == "sandbox" && (key == "url" || key == "urls")) t->erase(key == "url" ? "urls" : "url");
  try {
    toml::table v = toml::parse("v = " + value);
    t->insert_or_assign(key, *v.get("v"));
  } catch (const toml::parse_error&) {
    t->insert_or_assign(key, value);  // not TOML: a bare string
  }
  return Status::ok();
}

Expected<RlConfig> parse_rl_config(const std::string& text, const std::string& where,
                                   const std::vector<std::string>& overrides) {
  nlohmann::json root;
  try {
    toml::table tbl = toml::parse(text, where);
    for (const auto& o : overrides)
      if (auto st = apply_override(tbl, o); !st.is_ok()) return st;
    std::ostringstream os;
    os << toml::json_formatter{tbl};
    root = nlohmann::json::parse(os.str());
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << where << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    return invalid_argument(os.str());
  } catch (const std::exception& e) {
    return invalid_argument(where + ": " + e.what());
  }
  RlConfig c;
  for (const auto& [key, _] : root.items()) {
    static const char* kTables[] = {"run", "model", "env", "sft", "grpo", "eval", "rollout", "sandbox"};
    if (std::find_if(std::begin(kTables), std::end(kTables), [&](const char* t) { return key == t; }) == std::end(kTables))
      return invalid_argument(where + ": unknown table [" + key + "] (run, model, env, sft, grpo, eval, rollout, sandbox)");
  }
  Status st = read_table(root, "run", [&](http::JsonFields& f) {
    f.optional("dir", &c.run.dir);
    int64_t seed = int64_t(c.run.seed);
    f.optional("seed", &seed);
    c.run.seed = uint64_t(seed);
    f.optional("trainer_threads", &c.run.trainer_threads);
    f.optional("engine_threads", &c.run.engine_threads);
  });
  if (st.is_ok()) st = read_table(root, "model", [&](http::JsonFields& f) {
    f.optional("path", &c.model.path);
    f.optional("layers", &c.model.layers);
    f.optional("hidden", &c.model.hidden);
    f.optional("intermediate", &c.model.intermediate);
    f.optional("heads", &c.model.heads);
    f.optional("kv_heads", &c.model.kv_heads);
    f.optional("max_position", &c.model.max_position);
    f.optional("vocab", &c.model.vocab);
  });
  if (st.is_ok()) st = read_table(root, "sft", [&](http::JsonFields& f) {
    f.optional("steps", &c.sft.steps);
    f.optional("batch", &c.sft.batch);
    f.optional("lr", &c.sft.lr);
    f.optional("warmup_steps", &c.sft.warmup_steps);
  });
  if (st.is_ok()) st = read_table(root, "grpo", [&](http::JsonFields& f) {
    f.optional("steps", &c.grpo.steps);
    f.optional("prompts", &c.grpo.prompts);
    f.optional("samples", &c.grpo.samples);
    f.optional("temperature", &c.grpo.temperature);
    f.optional("lr", &c.grpo.lr);
    f.optional("clip", &c.grpo.clip);
    f.optional("kl_coef", &c.grpo.kl_coef);
    f.optional("tis_cap", &c.grpo.tis_cap);
    f.optional("max_policy_lag", &c.grpo.max_policy_lag);
    f.optional("drop_uniform_groups", &c.grpo.drop_uniform_groups);
    f.optional("checkpoint_every", &c.grpo.checkpoint_every);
  });
  if (st.is_ok()) st = read_table(root, "eval", [&](http::JsonFields& f) {
    f.optional("instances", &c.eval.instances);
    f.optional("samples", &c.eval.samples);
    f.optional("every", &c.eval.every);
    int64_t seed = int64_t(c.eval.seed);
    f.optional("seed", &seed);
    c.eval.seed = uint64_t(seed);
  });
  if (st.is_ok()) st = read_table(root, "rollout", [&](http::JsonFields& f) {
    f.optional("backend", &c.rollout.backend);
    f.optional("urls", &c.rollout.urls);
    f.optional("api_key", &c.rollout.api_key);
    f.optional("kv_cache_mib", &c.rollout.kv_cache_mib);
    f.optional("max_num_seqs", &c.rollout.max_num_seqs);
    f.optional("max_num_batched_tokens", &c.rollout.max_num_batched_tokens);
    f.optional("env_workers", &c.rollout.env_workers);
  });
  std::string sandbox_url;
  bool sandbox_urls = false;
  if (st.is_ok()) st = read_table(root, "sandbox", [&](http::JsonFields& f) {
    f.optional("url", &sandbox_url);
    sandbox_urls = f.has("urls");
    f.optional("urls", &c.sandbox.urls);
    f.optional("api_key", &c.sandbox.api_key);
    f.optional("lease_ttl_s", &c.sandbox.lease_ttl_s);
  });
  if (!st.is_ok()) return invalid_argument(where + ": " + st.message());
  if (sandbox_urls && root["sandbox"].contains("url"))
    return invalid_argument(where + ": sandbox.url and sandbox.urls: give one of them (url is a one-element urls)");
  if (sandbox_urls && c.sandbox.urls.empty())
    return invalid_argument(where + ": sandbox.urls: empty (leave [sandbox] out for no sandbox service)");
  if (!sandbox_url.empty()) c.sandbox.urls = {sandbox_url};
  if (auto it = root.find("env"); it != root.end()) c.env = *it;
  if (auto s = validate(c); !s.is_ok()) return invalid_argument(where + ": " + s.message());
  return c;
}

Expected<RlConfig> load_rl_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) return not_found("rl config: cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_rl_config(ss.str(), path, overrides);
}

}  // namespace tidal::rl
