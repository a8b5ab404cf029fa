#include "tidal/rl/rl_loop.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "tidal/engine/engine.h"
#include "tidal/model/model_init.h"
#include "tidal/rl/learning_curve.h"
#include "tidal/rl/trainer.h"
#include "tidal/rl/weight_sync.h"
#include "tidal/rollout/engine_backend.h"
#include "tidal/rollout/evaluate.h"
#include "tidal/rollout/http_backend.h"
#include "tidal/rollout/rollout_manager.h"
#include "tidal/rollout/seed.h"
#include "tidal/rollout/sandbox_pool.h"

namespace tidal::rl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }


Expected<json> read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return not_found(p.string() + ": cannot read");
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    return data_loss(p.string() + ": malformed JSON: " + e.what());
  }
}

// Writes `text` to `p` atomically (temporary file + rename): a killed run never leaves half a file.
Status write_file(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return io_error(tmp.string() + ": cannot write");
    out << text;
    if (!out.flush()) return io_error(tmp.string() + ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  if (ec) return io_error(p.string() + ": rename failed: " + ec.message());
  return Status::ok();
}

// Keeps the lines of a JSONL file for which keep(line) is true (resume: forget steps after the
// checkpoint, which the resumed run repeats).
Status filter_jsonl(const fs::path& p, const std::function<bool(const json&)>& keep) {
  if (!fs::exists(p)) return Status::ok();
  std::ifstream in(p);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (...) {
      continue;  // a line cut by a kill
    }
    if (keep(j)) out += line + "\n";
  }
  return write_file(p, out);
}

class JsonlLog {
 public:
  Status open(const fs::path& p) {
    out_.open(p, std::ios::app);
    return out_ ? Status::ok() : io_error(p.string() + ": cannot append");
  }
  void write(const json& j) {
    out_ << j.dump() << "\n";
    out_.flush();
  }

 private:
  std::ofstream out_;
};

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100 * v);
  return b;
}

struct Evals {
  json test;    // {"accuracy", "sampled_reward", ...}
  json probes;  // split -> accuracy
};

class Run {
 public:
  Run(const RlConfig& c, const RlRunOptions& o) : c_(c), o_(o), dir_(c.run.dir) {}
  Expected<json> go();

 private:
  void say(const std::string& line, bool transient = false) {
    if (o_.progress) o_.progress(line, transient);
  }
  Status prepare_model();
  Status sft();
  Expected<Evals> evaluate_all(Engine& engine, bool probes, int64_t step, const char* phase);
  Status grpo();
  Status finish();
  json summary() const;
  Status save_state() { return write_file(dir_ / "state.json", state_.dump(2) + "\n"); }
  std::string weights_path(uint64_t version) const {
    return "/dev/shm/tidal-rl-" + std::to_string(::getpid()) + "-v" + std::to_string(version) + ".safetensors";
  }
  EngineConfig engine_config(const std::string& model) const {
    EngineConfig e;
    e.model_dir = model;
    e.n_threads = int(c_.run.engine_threads);
    e.kv_cache_bytes = uint64_t(c_.rollout.kv_cache_mib) << 20;
    e.max_num_seqs = int32_t(c_.rollout.max_num_seqs);
    e.max_num_batched_tokens = c_.rollout.max_num_batched_tokens;
    return e;
  }

  const RlConfig& c_;
  const RlRunOptions& o_;
  fs::path dir_;
  json state_;
  Clock::time_point t0_ = Clock::now();
  double wall_before_ = 0;  // wall time of earlier invocations (resume)
  std::string model_dir_, policy_dir_;
  std::optional<Tokenizer> tokenizer_;
  // The run's sandbox hosts, one lease each (their sandboxes die with the run); null: none.
  std::shared_ptr<rollout::SandboxPool> sandboxes_;
  std::unique_ptr<rollout::Task> task_;
  JsonlLog metrics_, ledger_;
  std::unique_ptr<Engine> eval_engine_;
  bool stopped_ = false;
  std::vector<std::pair<double, double>> curve_reward_, curve_acc_, curve_sampled_;
};

Status Run::prepare_model() {
  if (!c_.model.path.empty()) {
    model_dir_ = c_.model.path;
    return Status::ok();
  }
  model_dir_ = (dir_ / "init").string();
  if (fs::exists(dir_ / "init" / "config.json")) return Status::ok();
  RandomModelSpec s;
  s.family = "qwen3";
  s.n_layers = c_.model.layers;
  s.hidden = c_.model.hidden;
  s.intermediate = c_.model.intermediate;
  s.n_heads = c_.model.heads;
  s.n_kv_heads = c_.model.kv_heads;
  s.vocab = c_.model.vocab;
  s.max_position = c_.model.max_position;
  s.dtype = DType::kF32;
  s.tie_embeddings = true;
  s.seed = c_.run.seed;
  say("initialising a " + std::to_string(c_.model.layers) + "-layer, width-" + std::to_string(c_.model.hidden) +
      " model in " + model_dir_);
  return write_random_model(s, model_dir_);
}

Expected<Evals> Run::evaluate_all(Engine& engine, bool probes, int64_t step, const char* phase) {
  rollout::EngineBackend backend(engine);
  Evals ev;
  const auto splits = task_->eval_splits();
  for (size_t i = 0; i < splits.size(); ++i) {
    if (i > 0 && !probes) break;
    const int32_t samples = i == 0 ? int32_t(c_.eval.samples) : 0;
    auto r = rollout::evaluate(*task_, backend, *tokenizer_, splits[i], c_.eval.instances, samples,
                               c_.grpo.temperature, c_.eval.seed);
    if (!r) return r.status();
    json j = {{"phase", "eval"}, {"at", phase}, {"step", step}, {"split", r->split}, {"instances", r->n},
              {"accuracy", r->accuracy}, {"failed", r->failed}, {"seconds", r->seconds}};
    if (samples > 0) {
      j["sampled_reward"] = r->sampled_reward;
      j["sampled_accuracy"] = r->sampled_accuracy;
      j["samples"] = samples;
    }
    metrics_.write(j);
    if (i == 0) ev.test = j;
    else ev.probes[r->split] = r->accuracy;
  }
  return ev;
}

Status Run::sft() {
  TrainerConfig tc;
  tc.model_dir = model_dir_;
  tc.n_threads = int(c_.run.trainer_threads);
  tc.seed = c_.run.seed;
  tc.optimizer.lr = c_.sft.lr;
  tc.optimizer.warmup_steps = c_.sft.warmup_steps;
  auto trainer = Trainer::create(tc);
  if (!trainer) return trainer.status();
  say("SFT warm-up: " + std::to_string(c_.sft.steps) + " steps x " + std::to_string(c_.sft.batch) +
      " demonstrations, lr " + std::to_string(c_.sft.lr) + " (" + std::to_string((*trainer)->n_parameters()) +
      " parameters)");
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < c_.sft.steps; ++s) {
    SftBatch b;
    for (int64_t i = 0; i < c_.sft.batch; ++i) {
      auto d = task_->demonstration(rollout::mix64(c_.run.seed ^ 0x5f7a11ull) + uint64_t(s * c_.sft.batch + i));
      if (!d) return invalid_argument("sft: task " + task_->name() + " has no demonstrations (set sft.steps = 0)");
      SftSequence q;
      q.tokens = d->prompt;
      q.tokens.insert(q.tokens.end(), d->completion.begin(), d->completion.end());
      q.loss_mask.assign(q.tokens.size(), 0.0f);
      std::fill(q.loss_mask.begin() + std::ptrdiff_t(d->prompt.size()), q.loss_mask.end(), 1.0f);
      b.sequences.push_back(std::move(q));
    }
    auto st = (*trainer)->sft_step(b);
    if (!st) return st.status();
    if ((s + 1) % 10 == 0 || s + 1 == c_.sft.steps) {
      metrics_.write({{"phase", "sft"}, {"step", s + 1}, {"loss", st->loss}, {"lr", st->lr},
                      {"grad_norm", st->grad_norm}, {"wall_s", wall_before_ + since(t0_)}});
      char line[160];
      std::snprintf(line, sizeof line, "[sft %lld/%lld] loss %.4f  %.1f steps/s", (long long)(s + 1),
                    (long long)c_.sft.steps, st->loss, double(s + 1) / since(t0));
      say(line, s + 1 < c_.sft.steps);
    }
  }
  policy_dir_ = (dir_ / "sft").string();
  return (*trainer)->save_model(policy_dir_, DType::kF32);
}

Status Run::grpo() {
  const int64_t G = c_.grpo.prompts;
  TrainerConfig tc;
  tc.model_dir = policy_dir_;
  tc.n_threads = int(c_.run.trainer_threads);
  tc.seed = c_.run.seed + 1;
  tc.optimizer.lr = c_.grpo.lr;
  tc.policy.clip_low = tc.policy.clip_high = c_.grpo.clip;
  tc.policy.kl_coef = c_.grpo.kl_coef;
  tc.policy.tis_cap = c_.grpo.tis_cap;
  if (c_.grpo.kl_coef > 0) tc.reference_dir = policy_dir_;
  auto trainer = Trainer::create(tc);
  if (!trainer) return trainer.status();
  Trainer& tr = **trainer;
  const int64_t step0 = state_.value("step", int64_t(0));
  if (step0 > 0) {
    const std::string ck = (dir_ / "ckpt" / ("step-" + std::to_string(step0))).string();
    if (auto st = tr.load_checkpoint(ck); !st.is_ok()) return st;
    say("resumed from " + ck);
  }
  uint64_t version = uint64_t(step0);
  std::string current = weights_path(version);
  // The policy's weights as a file: backends load version step0 from it (resumed runs, and
  // `tidal serve` instances started on any weights of the same shape).
  if (auto st = write_weights_file(tr.parameters(), current, DType::kF32, 0); !st.is_ok()) return st;
  std::unique_ptr<Engine> engine;  // in-process rollouts
  std::unique_ptr<rollout::GenerationBackend> backend;
  if (c_.rollout.backend == "http") {
    rollout::HttpBackendOptions ho;
    ho.urls = c_.rollout.urls;
    ho.api_key = c_.rollout.api_key;
    auto hb = rollout::HttpBackend::create(ho);
    if (!hb) return hb.status();
    backend = std::move(*hb);
  } else {
    auto e = Engine::create(engine_config(policy_dir_));
    if (!e) return e.status();
    engine = std::move(*e);
    backend = std::make_unique<rollout::EngineBackend>(*engine);
  }
  if (step0 > 0 || c_.rollout.backend == "http") {
    if (auto st = backend->publish_weights(current, version); !st.is_ok()) return st;
  }
  rollout::RolloutConfig rc;
  rc.group_size = int32_t(c_.grpo.samples);
  rc.groups_per_step = int32_t(G);
  rc.max_policy_lag = int32_t(c_.grpo.max_policy_lag);
  rc.temperature = c_.grpo.temperature;
  rc.seed = c_.run.seed;
  rc.first_group = uint64_t(step0 * G);
  rc.env_workers = int32_t(c_.rollout.env_workers);
  rc.max_groups = uint64_t(c_.grpo.steps * G) - rc.first_group;
  rollout::RolloutManager manager(*task_, *backend, *tokenizer_, rc);
  say("GRPO: " + std::to_string(c_.grpo.steps) + " steps x " + std::to_string(G) + " prompts x " +
      std::to_string(c_.grpo.samples) + " samples, lr " + std::to_string(c_.grpo.lr) + ", max_policy_lag " +
      std::to_string(c_.grpo.max_policy_lag) + ", rollouts on " + backend->describe());
  manager.start(version);
  std::vector<std::string> published = {current};
  rollout::RolloutStats prev = manager.stats();
  std::vector<rollout::SandboxHostStats> prev_hosts;
  if (sandboxes_) prev_hosts = sandboxes_->stats();
  const auto grpo_t0 = Clock::now();
  for (int64_t s = step0; s < c_.grpo.steps; ++s) {
    auto tw = Clock::now();
    auto groups = manager.take(size_t(G), version);
    if (!groups) return groups.status();
    const double wait_s = since(tw);
    GrpoBatch batch;
    int64_t uniform = 0, failed = 0, n_traj = 0, correct = 0, used_groups = 0;
    double reward = 0, stale_sum = 0, stale_max = 0;
    int64_t tokens = 0;
    for (const auto& g : *groups) {
      const bool skip = c_.grpo.drop_uniform_groups && g.uniform_reward();
      uniform += g.uniform_reward();
      if (!skip) ++used_groups;
      for (const auto& t : g.samples) {
        ++n_traj;
        reward += t.reward;
        correct += t.correct;
        tokens += int64_t(t.tokens.size()) - t.n_prompt;
        if (!t.error.empty()) {
          ++failed;
          continue;
        }
        const double stale = double(version - std::min(version, t.min_version()));
        stale_sum += stale;
        stale_max = std::max(stale_max, stale);
        ledger_.write({{"step", s + 1}, {"trajectory", t.id()}, {"group", t.group}, {"sample", t.sample},
                       {"reward", t.reward}, {"used", !skip}, {"min_version", t.min_version()},
                       {"max_version", t.max_version()}});
        if (skip) continue;
        GrpoSample gs;
        gs.tokens = t.tokens;
        gs.n_prompt = t.n_prompt;
        gs.reward = float(t.reward);
        gs.group = int32_t(g.id - uint64_t(s * G));
        gs.loss_mask = t.loss_mask;
        // PPO against the behaviour policy: the ratio is pi_theta / pi_rollout, clipped, so a
        // batch generated by an older version (max_policy_lag >= 1) cannot move the policy
        // further than the clip range allows. (The engine computes in F32 like the trainer:
        // on-policy the two agree to ~1e-6, measured as rollout_abs_delta at lag 0.)
        gs.old_logprobs = t.rollout_logprobs;
        gs.rollout_logprobs = t.rollout_logprobs;
        batch.samples.push_back(std::move(gs));
      }
    }
    auto tt = Clock::now();
    StepStats st;
    if (!batch.samples.empty()) {
      auto r = tr.grpo_step(batch);
      if (!r) return r.status();
      st = *r;
    }
    const double train_s = since(tt);
    // Publish version s+1: a fresh shared-memory file (the backend maps it; older ones are
    // unlinked once a newer one was handed over: a mapping outlives its file name).
    auto ts = Clock::now();
    version = uint64_t(s + 1);
    current = weights_path(version);
    if (auto w = write_weights_file(tr.parameters(), current, DType::kF32, 0,
                                    {{"weight_version", std::to_string(version)}});
        !w.is_ok())
      return w;
    manager.publish(current, version);
    published.push_back(current);
    if (published.size() > 2) {
      ::unlink(published.front().c_str());
      published.erase(published.begin());
    }
    const double sync_s = since(ts);
    const rollout::RolloutStats now = manager.stats();
    const double gen_s = now.generate_seconds - prev.generate_seconds;
    const double gen_tok = double(now.generated_tokens - prev.generated_tokens);
    json m = {{"phase", "grpo"}, {"step", s + 1}, {"version", version},
              {"reward", n_traj ? reward / double(n_traj) : 0.0}, {"accuracy", n_traj ? double(correct) / double(n_traj) : 0.0},
              {"groups", groups->size()}, {"groups_used", used_groups}, {"groups_uniform", uniform},
              {"trajectories_failed", failed}, {"generated_tokens", tokens},
              {"staleness_mean", n_traj - failed ? stale_sum / double(n_traj - failed) : 0.0}, {"staleness_max", stale_max},
              {"loss", st.loss}, {"kl", st.kl}, {"clip_fraction", st.clip_fraction}, {"tis_weight", st.tis_weight},
              {"rollout_abs_delta", st.rollout_abs_delta}, {"grad_norm", st.grad_norm}, {"lr", st.lr},
              {"time_s", {{"wait_rollout", wait_s}, {"train", train_s}, {"sync", sync_s},
                          {"generate", gen_s}, {"env", now.env_seconds - prev.env_seconds},
                          {"weight_update", now.weight_update_seconds - prev.weight_update_seconds}}},
              {"rollout_tokens_per_s", gen_s > 0 ? gen_tok / gen_s : 0.0},
              {"resubmissions", now.resubmissions - prev.resubmissions},
              {"sandbox_calls", now.info.count("sandbox_calls") ? now.info.at("sandbox_calls") -
                                    (prev.info.count("sandbox_calls") ? prev.info.at("sandbox_calls") : 0.0) : 0.0},
              {"wall_s", wall_before_ + since(t0_)}};
    prev = now;
    if (sandboxes_) {
      // Per host, this step: requests (run, create, exec, delete) and failed ones.
      auto hosts = sandboxes_->stats();
      json per_host = json::object();
      for (size_t i = 0; i < hosts.size() && i < prev_hosts.size(); ++i)
        per_host[hosts[i].url] = {{"calls", hosts[i].calls - prev_hosts[i].calls},
                                  {"failures", hosts[i].failures - prev_hosts[i].failures}};
      m["sandbox_hosts"] = std::move(per_host);
      prev_hosts = std::move(hosts);
    }
    curve_reward_.push_back({double(s + 1), m["reward"].get<double>()});
    double eval_s = 0;
    if (c_.eval.every > 0 && (s + 1) % c_.eval.every == 0 && s + 1 < c_.grpo.steps) {
      auto te = Clock::now();
      if (auto st2 = eval_engine_->update_weights(current, version); !st2.is_ok()) return st2;
      auto ev = evaluate_all(*eval_engine_, false, s + 1, "grpo");
      if (!ev) return ev.status();
      curve_acc_.push_back({double(s + 1), ev->test["accuracy"].get<double>()});
      if (ev->test.contains("sampled_reward"))
        curve_sampled_.push_back({double(s + 1), ev->test["sampled_reward"].get<double>()});
      eval_s = since(te);
    }
    m["time_s"]["eval"] = eval_s;
    metrics_.write(m);
    const bool last = s + 1 == c_.grpo.steps;
    if (last || (c_.grpo.checkpoint_every > 0 && (s + 1) % c_.grpo.checkpoint_every == 0)) {
      const fs::path ck = dir_ / "ckpt" / ("step-" + std::to_string(s + 1));
      if (auto w = tr.save_checkpoint(ck.string()); !w.is_ok()) return w;
      state_["phase"] = "grpo";
      state_["step"] = s + 1;
      state_["wall_s"] = wall_before_ + since(t0_);
      state_["curve"] = {{"reward", curve_reward_}, {"accuracy", curve_acc_}, {"sampled", curve_sampled_}};
      if (auto w = save_state(); !w.is_ok()) return w;
      // Keep the two newest checkpoints.
      std::vector<int64_t> steps;
      for (const auto& e : fs::directory_iterator(dir_ / "ckpt")) {
        const std::string n = e.path().filename().string();
        if (n.rfind("step-", 0) == 0 && n.find('.') == std::string::npos) steps.push_back(std::stoll(n.substr(5)));
      }
      std::sort(steps.begin(), steps.end());
      for (size_t i = 0; i + 2 < steps.size(); ++i) fs::remove_all(dir_ / "ckpt" / ("step-" + std::to_string(steps[i])));
    }
    char line[256];
    const double per_step = since(grpo_t0) / double(s + 1 - step0);
    std::snprintf(line, sizeof line,
                  "[grpo %lld/%lld] reward %.3f  used %lld/%lld groups  staleness %.2f  %.2f s/step  eta %.0f s",
                  (long long)(s + 1), (long long)c_.grpo.steps, m["reward"].get<double>(), (long long)used_groups,
                  (long long)G, m["staleness_mean"].get<double>(), per_step,
                  per_step * double(c_.grpo.steps - s - 1));
    say(line, !last);
    if (o_.stop_after_steps > 0 && s + 1 - step0 >= o_.stop_after_steps && !last) {
      stopped_ = true;
      break;
    }
  }
  manager.stop();
  for (const auto& p : published) ::unlink(p.c_str());
  if (!stopped_) {
    // The final policy for the last evaluation.
    if (auto st = write_weights_file(tr.parameters(), current, DType::kF32, 0); !st.is_ok()) return st;
    auto st = eval_engine_->update_weights(current, version);
    ::unlink(current.c_str());
    if (!st.is_ok()) return st;
  }
  return Status::ok();
}

json Run::summary() const {
  json r;
  const json& sft = state_["sft_eval"];
  const json& fin = state_["final_eval"];
  r["sft_accuracy"] = sft["test"].value("accuracy", 0.0);
  r["sft_sampled_reward"] = sft["test"].value("sampled_reward", 0.0);
  r["rl_accuracy"] = fin["test"].value("accuracy", 0.0);
  r["rl_sampled_reward"] = fin["test"].value("sampled_reward", 0.0);
  for (const auto& [split, acc] : fin["probes"].items()) {
    std::string k = split;
    std::replace(k.begin(), k.end(), '-', '_');
    r[k + "_accuracy"] = acc;
  }
  for (const auto& [split, acc] : sft["probes"].items()) {
    std::string k = split;
    std::replace(k.begin(), k.end(), '-', '_');
    r["sft_" + k + "_accuracy"] = acc;
  }
  r["grpo_steps"] = c_.grpo.steps;
  r["max_policy_lag"] = c_.grpo.max_policy_lag;
  r["wall_s"] = state_.value("wall_s", 0.0);
  r["run_dir"] = dir_.string();
  return r;
}

Expected<json> Run::go() {
  const fs::path state_path = dir_ / "state.json";
  if (fs::exists(state_path) && !o_.resume)
    return invalid_argument("run.dir " + dir_.string() +
                            " holds a run already: pass --resume to continue it, or choose another run.dir");
  if (o_.resume) {
    if (!fs::exists(state_path)) return not_found("--resume: nothing to resume in " + dir_.string() + " (no state.json)");
    auto s = read_json(state_path);
    if (!s) return s.status();
    state_ = *s;
    wall_before_ = state_.value("wall_s", 0.0);
    if (state_.value("phase", "") == "done") return summary();
  } else {
    state_ = {{"phase", "start"}};
  }
  std::error_code ec;
  fs::create_directories(dir_ / "ckpt", ec);
  if (ec) return io_error(dir_.string() + ": cannot create: " + ec.message());
  if (!o_.resume && !o_.config_text.empty()) {
    std::string ov;
    for (const auto& o : o_.overrides) ov += o + "\n";
    if (auto st = write_file(dir_ / "config.toml", o_.config_text); !st.is_ok()) return st;
    if (auto st = write_file(dir_ / "overrides.txt", ov); !st.is_ok()) return st;
  }
  if (auto st = prepare_model(); !st.is_ok()) return st;
  auto tok = Tokenizer::load(model_dir_);
  if (!tok) return tok.status();
  tokenizer_ = std::move(*tok);
  rollout::TaskContext ctx;
  ctx.tokenizer = &*tokenizer_;
  if (!c_.sandbox.urls.empty()) {
    auto pool = rollout::SandboxPool::open(c_.sandbox.urls, c_.sandbox.api_key, double(c_.sandbox.lease_ttl_s));
    if (!pool) return pool.status();
    sandboxes_ = std::move(*pool);
    std::string hosts;
    for (size_t i = 0; i < sandboxes_->size(); ++i)
      hosts += (i ? ", " : "") + sandboxes_->url(i) + " (lease " + sandboxes_->lease(i) + ")";
    say("sandbox hosts: " + hosts + "; leases renewed every " + std::to_string(c_.sandbox.lease_ttl_s / 3) +
        " s, their sandboxes end with the run");
  }
  ctx.sandboxes = sandboxes_;
  auto task = rollout::make_task(c_.env, ctx);
  if (!task) return task.status();
  task_ = std::move(*task);

  const int64_t step0 = state_.value("step", int64_t(0));
  // Forget what a killed invocation logged after its last checkpoint (the resumed run repeats it).
  auto keep = [&](const json& j) {
    const std::string ph = j.value("phase", "");
    if (state_["phase"] == "start") return false;
    if (ph == "sft") return true;
    if (ph == "eval" && j.value("at", "") == "sft") return true;
    return j.value("step", int64_t(0)) <= step0 && ph != "" && j.value("at", "") != "final";
  };
  if (auto st = filter_jsonl(dir_ / "metrics.jsonl", keep); !st.is_ok()) return st;
  if (auto st = filter_jsonl(dir_ / "ledger.jsonl", [&](const json& j) { return state_["phase"] != "start" && j.value("step", int64_t(0)) <= step0; });
      !st.is_ok())
    return st;
  if (auto st = metrics_.open(dir_ / "metrics.jsonl"); !st.is_ok()) return st;
  if (auto st = ledger_.open(dir_ / "ledger.jsonl"); !st.is_ok()) return st;

  policy_dir_ = c_.sft.steps > 0 ? (dir_ / "sft").string() : model_dir_;
  const bool fresh = state_["phase"] == "start";
  if (fresh && c_.sft.steps > 0) {
    if (auto st = sft(); !st.is_ok()) return st;
  }
  // Evaluations run on their own engine, loaded with each evaluated version.
  auto e = Engine::create(engine_config(policy_dir_));
  if (!e) return e.status();
  eval_engine_ = std::move(*e);
  if (fresh) {
    auto ev = evaluate_all(*eval_engine_, true, 0, "sft");
    if (!ev) return ev.status();
    state_ = {{"phase", "grpo"}, {"step", 0}, {"sft_eval", {{"test", ev->test}, {"probes", ev->probes}}},
              {"wall_s", wall_before_ + since(t0_)}};
    if (auto st = save_state(); !st.is_ok()) return st;
    say("after SFT: greedy accuracy " + pct(ev->test["accuracy"].get<double>()) + ", sampled reward " +
        pct(ev->test.value("sampled_reward", 0.0)));
  } else if (state_.contains("curve")) {
    state_["curve"]["reward"].get_to(curve_reward_);
    state_["curve"]["accuracy"].get_to(curve_acc_);
    state_["curve"]["sampled"].get_to(curve_sampled_);
  }
  const json& sft_test = state_["sft_eval"]["test"];
  curve_acc_.insert(curve_acc_.begin(), {0.0, sft_test.value("accuracy", 0.0)});
  if (sft_test.contains("sampled_reward")) curve_sampled_.insert(curve_sampled_.begin(), {0.0, sft_test["sampled_reward"].get<double>()});
  std::sort(curve_acc_.begin(), curve_acc_.end());
  curve_acc_.erase(std::unique(curve_acc_.begin(), curve_acc_.end()), curve_acc_.end());
  std::sort(curve_sampled_.begin(), curve_sampled_.end());
  curve_sampled_.erase(std::unique(curve_sampled_.begin(), curve_sampled_.end()), curve_sampled_.end());

  if (c_.grpo.steps > 0) {
    if (auto st = grpo(); !st.is_ok()) return st;
  }
  if (stopped_) return json{{"stopped", true}, {"step", state_.value("step", int64_t(0))}};
  auto ev = evaluate_all(*eval_engine_, true, c_.grpo.steps, "final");
  if (!ev) return ev.status();
  curve_acc_.push_back({double(c_.grpo.steps), ev->test["accuracy"].get<double>()});
  if (ev->test.contains("sampled_reward")) curve_sampled_.push_back({double(c_.grpo.steps), ev->test["sampled_reward"].get<double>()});
  // Smooth the per-step batch reward over 10 steps for the plot.
  std::vector<std::pair<double, double>> smooth;
  for (size_t i = 0; i < curve_reward_.size(); ++i) {
    double s = 0;
    size_t n = 0;
    for (size_t j = i >= 9 ? i - 9 : 0; j <= i; ++j, ++n) s += curve_reward_[j].second;
    smooth.push_back({curve_reward_[i].first, s / double(n)});
  }
  const std::string svg = render_learning_curve(
      task_->name() + ": GRPO after SFT", "GRPO step",
      {{"train reward (10-step mean)", "#1f77b4", smooth, false},
       {"test greedy accuracy", "#d62728", curve_acc_, true},
       {"test sampled reward", "#2ca02c", curve_sampled_, true}});
  if (auto st = write_file(dir_ / "curve.svg", svg); !st.is_ok()) return st;
  state_["phase"] = "done";
  state_["final_eval"] = {{"test", ev->test}, {"probes", ev->probes}};
  state_["wall_s"] = wall_before_ + since(t0_);
  if (auto st = save_state(); !st.is_ok()) return st;
  json r = summary();
  if (auto st = write_file(dir_ / "result.json", r.dump(2) + "\n"); !st.is_ok()) return st;
  return r;
}

}  // namespace

Expected<json> run_rl(const RlConfig& config, const RlRunOptions& options) {
  Run run(config, options);
  return run.go();
}

}  // namespace tidal::rl
