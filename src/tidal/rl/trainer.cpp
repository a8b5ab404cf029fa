// Trainer: batches -> micro-batches -> TorchModel forward -> loss -> backward -> clip -> AdamW.
#include "tidal/rl/trainer.h"

#include <dlfcn.h>
#include <malloc.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tidal/model/safetensors.h"
#include "tidal/rl/adamw.h"
#include "tidal/rl/advantages.h"
#include "tidal/rl/blas_check.h"
#include "tidal/rl/lr_schedule.h"
#include "tidal/rl/policy_loss.h"
#include "tidal/rl/torch_model.h"
#include "tidal/rl/weight_sync.h"

namespace tidal::rl {

namespace fs = std::filesystem;
using json = nlohmann::json;
using torch::indexing::Slice;

namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kCheckpointFormat = "tidal-trainer-checkpoint";
constexpr int kCheckpointVersion = 1;
// Copied from the model folder into saved models (when present).
constexpr const char* kSideFiles[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                                      "special_tokens_map.json", "chat_template.jinja"};

Expected<std::string> read_text(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return not_found(p.string() + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return io_error(p.string() + ": write failed");
  return Status::ok();
}

const char* torch_dtype_name(DType d) {
  switch (d) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    default: return "bfloat16";
  }
}

// One micro-batch: padded token rows and one coefficient row per scored position.
struct MicroBatch {
  std::vector<size_t> rows;  // indices into the batch's sequences
  int64_t T = 0;             // longest sequence of the micro-batch
};

std::vector<MicroBatch> split(const std::vector<size_t>& lengths, int64_t per_micro) {
  std::vector<MicroBatch> out;
  const size_t n = lengths.size();
  const size_t step = per_micro > 0 ? size_t(per_micro) : n;
  for (size_t i = 0; i < n; i += step) {
    MicroBatch mb;
    for (size_t j = i; j < std::min(n, i + step); ++j) {
      mb.rows.push_back(j);
      mb.T = std::max<int64_t>(mb.T, int64_t(lengths[j]));
    }
    out.push_back(std::move(mb));
  }
  return out;
}

// [rows, T] int64, right-padded with token 0.
torch::Tensor token_tensor(const MicroBatch& mb, const std::vector<const std::vector<int32_t>*>& seqs) {
  torch::Tensor t = torch::zeros({int64_t(mb.rows.size()), mb.T}, torch::kInt64);
  int64_t* d = t.data_ptr<int64_t>();
  for (size_t r = 0; r < mb.rows.size(); ++r) {
    const std::vector<int32_t>& s = *seqs[mb.rows[r]];
    for (size_t i = 0; i < s.size(); ++i) d[int64_t(r) * mb.T + int64_t(i)] = s[i];
  }
  return t;
}

// Per-position row for a micro-batch: values[row][pos] for pos < T-1, `fill` elsewhere.
torch::Tensor position_tensor(const MicroBatch& mb, const std::vector<std::vector<float>>& per_seq, float fill) {
  const int64_t W = std::max<int64_t>(mb.T - 1, 0);
  torch::Tensor t = torch::full({int64_t(mb.rows.size()), W}, fill, torch::kFloat32);
  float* d = t.data_ptr<float>();
  for (size_t r = 0; r < mb.rows.size(); ++r) {
    const std::vector<float>& v = per_seq[mb.rows[r]];
    std::copy(v.begin(), v.end(), d + int64_t(r) * W);
  }
  return t;
}

Status check_tokens(const std::vector<int32_t>& tokens, int64_t vocab, const std::string& what) {
  if (tokens.size() < 2) return invalid_argument(what + ": needs at least 2 tokens (one to predict)");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      return invalid_argument(what + ": token " + std::to_string(i) + " is " + std::to_string(tokens[i]) +
                              ", outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  return Status::ok();
}

// OpenBLAS runs its own thread pool beside torch's OpenMP one; without this it keeps one thread
// per core spinning in sched_yield between calls. Found at run time (libblas.so.3 may be another
// BLAS, which simply lacks the symbol).
void set_blas_threads(int n) {
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(n);
}

void tune_malloc() {
  // NOTE: process-wide. Freed activation buffers stay in the heap for the next step instead of
  // going back to the OS (trim) and faulting back in; 32 MiB is glibc's largest mmap threshold.
  ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

struct Trainer::Impl {
  TrainerConfig config;
  std::unique_ptr<TorchModel> model, reference;
  std::unique_ptr<AdamW> optimizer;
  int64_t step = 0;
  at::Generator rng;

  void zero_grad() {
    for (const torch::Tensor& p : model->parameters()) {
      if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
    }
  }
  Expected<StepStats> sft(const SftBatch& batch);
  Expected<StepStats> grpo(const GrpoBatch& batch);
  StepStats update(StepStats stats);
};

Trainer::Trainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Trainer::~Trainer() = default;

Expected<std::unique_ptr<Trainer>> Trainer::create(const TrainerConfig& config) {
  if (config.n_threads < 0) return invalid_argument("trainer: n_threads must be >= 0");
  if (config.micro_batch_seqs < 0) return invalid_argument("trainer: micro_batch_seqs must be >= 0");
  const OptimizerConfig& o = config.optimizer;
  if (!(o.lr >= 0)) return invalid_argument("trainer: lr must be >= 0");
  if (!(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1)) {
    return invalid_argument("trainer: AdamW betas must be in [0, 1)");
  }
  if (!(o.eps > 0)) return invalid_argument("trainer: AdamW eps must be > 0");
  if (o.schedule == LrSchedule::kCosine && o.total_steps <= o.warmup_steps) {
    return invalid_argument("trainer: cosine schedule needs total_steps > warmup_steps");
  }
  if (o.warmup_steps < 0) return invalid_argument("trainer: warmup_steps must be >= 0");
  const PolicyLossConfig& pl = config.policy;
  if (!(pl.clip_low >= 0 && pl.clip_low < 1) || !(pl.clip_high >= 0)) {
    return invalid_argument("trainer: clip_low must be in [0, 1) and clip_high >= 0");
  }
  if (!(pl.kl_coef >= 0) || !(pl.tis_cap >= 0)) return invalid_argument("trainer: kl_coef and tis_cap must be >= 0");

  if (config.n_threads > 0) {
    at::set_num_threads(config.n_threads);
    set_blas_threads(config.n_threads);
  }
  if (config.tune_malloc) tune_malloc();
  if (config.check_blas) check_blas_speed();
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  for (DType d : {config.emulate_weight_dtype, config.emulate_kv_dtype}) {
    if (d != DType::kF32 && d != DType::kBF16 && d != DType::kF16) {
      return invalid_argument(std::string("trainer: engine emulation dtypes are F32 (off), BF16 or F16, not ") +
                              dtype_name(d));
    }
  }
  TIDAL_ASSIGN_OR_RETURN(impl->model, TorchModel::load(config.model_dir));
  impl->model->set_rounding(config.emulate_weight_dtype, config.emulate_kv_dtype);
  if (!config.reference_dir.empty()) {
    TIDAL_ASSIGN_OR_RETURN(impl->reference, TorchModel::load(config.reference_dir));
    const ModelConfig &a = impl->model->config(), &b = impl->reference->config();
    if (a.vocab_size != b.vocab_size) {
      return invalid_argument(config.reference_dir + ": vocabulary " + std::to_string(b.vocab_size) +
                              " differs from the policy's " + std::to_string(a.vocab_size));
    }
    for (const torch::Tensor& p : impl->reference->parameters()) p.set_requires_grad(false);
  }
  std::vector<bool> decay;
  for (const torch::Tensor& p : impl->model->parameters()) decay.push_back(p.dim() >= 2);
  impl->optimizer = std::make_unique<AdamW>(impl->model->parameters(), std::move(decay));
  impl->rng = at::make_generator<at::CPUGeneratorImpl>(config.seed);
  return std::unique_ptr<Trainer>(new Trainer(std::move(impl)));
}

const ModelConfig& Trainer::model_config() const { return impl_->model->config(); }
const TrainerConfig& Trainer::config() const { return impl_->config; }
int64_t Trainer::step() const { return impl_->step; }
double Trainer::lr_at(int64_t step) const { return learning_rate(impl_->config.optimizer, step); }

uint64_t Trainer::n_parameters() const {
  uint64_t n = 0;
  for (const torch::Tensor& p : impl_->model->parameters()) n += uint64_t(p.numel());
  return n;
}

// ---- SFT ----------------------------------------------------------------------------------

Expected<StepStats> Trainer::Impl::sft(const SftBatch& batch) {
  if (batch.sequences.empty()) return invalid_argument("sft: empty batch");
  const int64_t V = model->config().vocab_size;
  std::vector<const std::vector<int32_t>*> seqs;
  std::vector<size_t> lengths;
  std::vector<std::vector<float>> weights;  // per scored position t-1: mask of token t
  double mask_sum = 0;
  int64_t n_tokens = 0;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const SftSequence& s = batch.sequences[i];
    const std::string what = "sft: sequence " + std::to_string(i);
    TIDAL_RETURN_IF_ERROR(check_tokens(s.tokens, V, what));
    if (!s.loss_mask.empty() && s.loss_mask.size() != s.tokens.size()) {
      return invalid_argument(what + ": loss_mask has " + std::to_string(s.loss_mask.size()) + " entries for " +
                              std::to_string(s.tokens.size()) + " tokens");
    }
    std::vector<float> w(s.tokens.size() - 1, 1.0f);
    for (size_t t = 1; t < s.tokens.size(); ++t) {
      if (!s.loss_mask.empty()) {
        const float m = s.loss_mask[t];
        if (!(m >= 0) || !std::isfinite(m)) return invalid_argument(what + ": loss_mask values must be finite and >= 0");
        w[t - 1] = m;
      }
      mask_sum += w[t - 1];
      n_tokens += w[t - 1] != 0;
    }
    seqs.push_back(&s.tokens);
    lengths.push_back(s.tokens.size());
    weights.push_back(std::move(w));
  }
  if (mask_sum <= 0) return invalid_argument("sft: the loss masks select no token");
  // loss = -sum(mask * logp) / sum(mask): each micro-batch adds its share of the numerator.
  for (auto& w : weights) for (float& x : w) x = float(double(x) / mask_sum);

  double loss = 0;
  for (const MicroBatch& mb : split(lengths, config.micro_batch_seqs)) {
    const torch::Tensor tokens = token_tensor(mb, seqs);
    const torch::Tensor coef = position_tensor(mb, weights, 0.0f);
    const torch::Tensor lp = model->token_logprobs(tokens, coef.ne(0));
    const torch::Tensor l = -(lp * coef).sum();
    l.backward();
    loss += l.item<double>();
  }
  StepStats st;
  st.loss = loss;
  st.n_tokens = n_tokens;
  st.n_sequences = int64_t(batch.sequences.size());
  return st;
}

// ---- GRPO / PPO ---------------------------------------------------------------------------

Expected<StepStats> Trainer::Impl::grpo(const GrpoBatch& batch) {
  if (batch.samples.empty()) return invalid_argument("grpo: empty batch");
  const PolicyLossConfig& pc = config.policy;
  const int64_t V = model->config().vocab_size;
  const size_t n = batch.samples.size();

  // Advantages: all given, or all from the group rewards.
  size_t n_given = 0;
  for (const GrpoSample& s : batch.samples) n_given += s.advantage.has_value();
  if (n_given != 0 && n_given != n) {
    return invalid_argument("grpo: " + std::to_string(n_given) + " of " + std::to_string(n) +
                            " samples carry an advantage; give it for all samples or for none");
  }
  std::vector<float> adv(n);
  if (n_given == n) {
    for (size_t i = 0; i < n; ++i) adv[i] = *batch.samples[i].advantage;
  } else {
    std::vector<float> rewards;
    std::vector<int32_t> groups;
    for (const GrpoSample& s : batch.samples) {
      rewards.push_back(s.reward);
      groups.push_back(s.group);
    }
    TIDAL_ASSIGN_OR_RETURN(adv, group_advantages(rewards, groups, pc.scale_by_std, pc.adv_eps));
  }

  // Per scored position (token t predicted at row t-1): mask, old, rollout and ref logprobs.
  std::vector<const std::vector<int32_t>*> seqs;
  std::vector<size_t> lengths;
  std::vector<std::vector<float>> mask(n), old_lp(n), rollout(n), ref(n), adv_rows(n);
  bool need_reference = false;
  int64_t n_tokens = 0;
  int64_t n_scored_seqs = 0;
  double mask_sum = 0;
  std::vector<double> seq_mask_sum(n, 0.0);
  const float kAbsent = NAN;
  for (size_t i = 0; i < n; ++i) {
    const GrpoSample& s = batch.samples[i];
    const std::string what = "grpo: sample " + std::to_string(i);
    TIDAL_RETURN_IF_ERROR(check_tokens(s.tokens, V, what));
    if (s.n_prompt < 1 || size_t(s.n_prompt) >= s.tokens.size()) {
      return invalid_argument(what + ": n_prompt is " + std::to_string(s.n_prompt) + "; it must be in [1, " +
                              std::to_string(s.tokens.size() - 1) + "] so that the completion is not empty");
    }
    const size_t n_comp = s.tokens.size() - size_t(s.n_prompt);
    auto check_len = [&](const std::vector<float>& v, const char* field) -> Status {
      if (!v.empty() && v.size() != n_comp) {
        return invalid_argument(what + ": " + field + " has " + std::to_string(v.size()) + " entries for " +
                                std::to_string(n_comp) + " completion tokens");
      }
      for (float x : v) {
        if (!std::isfinite(x)) return invalid_argument(what + ": " + field + " holds a value that is not finite");
      }
      return Status::ok();
    };
    TIDAL_RETURN_IF_ERROR(check_len(s.loss_mask, "loss_mask"));
    TIDAL_RETURN_IF_ERROR(check_len(s.rollout_logprobs, "rollout_logprobs"));
    TIDAL_RETURN_IF_ERROR(check_len(s.old_logprobs, "old_logprobs"));
    TIDAL_RETURN_IF_ERROR(check_len(s.ref_logprobs, "ref_logprobs"));
    if (pc.kl_coef > 0 && s.ref_logprobs.empty()) need_reference = true;
    const size_t W = s.tokens.size() - 1;
    mask[i].assign(W, 0.0f);
    old_lp[i].assign(W, kAbsent);
    rollout[i].assign(W, kAbsent);
    ref[i].assign(W, kAbsent);
    adv_rows[i].assign(W, adv[i]);
    for (size_t k = 0; k < n_comp; ++k) {
      const size_t pos = size_t(s.n_prompt) + k - 1;
      const float m = s.loss_mask.empty() ? 1.0f : s.loss_mask[k];
      if (m < 0) return invalid_argument(what + ": loss_mask values must be >= 0");
      mask[i][pos] = m;
      seq_mask_sum[i] += m;
      n_tokens += m != 0;
      if (!s.old_logprobs.empty()) old_lp[i][pos] = s.old_logprobs[k];
      if (!s.rollout_logprobs.empty()) rollout[i][pos] = s.rollout_logprobs[k];
      if (!s.ref_logprobs.empty()) ref[i][pos] = s.ref_logprobs[k];
    }
    mask_sum += seq_mask_sum[i];
    n_scored_seqs += seq_mask_sum[i] > 0;
    seqs.push_back(&s.tokens);
    lengths.push_back(s.tokens.size());
  }
  if (mask_sum <= 0) return invalid_argument("grpo: the loss masks select no completion token");
  if (need_reference && !reference) {
    return invalid_argument("grpo: kl_coef > 0 but samples carry no ref_logprobs and no reference model is loaded "
                            "(TrainerConfig::reference_dir)");
  }
  // Aggregation as per-token coefficients over the whole batch (exact under accumulation).
  std::vector<std::vector<float>> coef(n);
  for (size_t i = 0; i < n; ++i) {
    coef[i].resize(mask[i].size());
    for (size_t j = 0; j < mask[i].size(); ++j) {
      const double m = mask[i][j];
      double c = 0;
      if (m != 0) {
        c = pc.aggregation == LossAggregation::kToken ? m / mask_sum
                                                      : m / (seq_mask_sum[i] * double(n_scored_seqs));
      }
      coef[i][j] = float(c);
    }
  }

  PolicyTotals totals;
  for (const MicroBatch& mb : split(lengths, config.micro_batch_seqs)) {
    const torch::Tensor tokens = token_tensor(mb, seqs);
    PolicyInputs pin;
    pin.coef = position_tensor(mb, coef, 0.0f);
    pin.scored = position_tensor(mb, mask, 0.0f).ne(0);
    pin.advantage = position_tensor(mb, adv_rows, 0.0f);
    pin.old_logprobs = position_tensor(mb, old_lp, kAbsent);
    pin.rollout_logprobs = position_tensor(mb, rollout, kAbsent);
    pin.ref_logprobs = position_tensor(mb, ref, kAbsent);
    if (need_reference) {
      torch::NoGradGuard no_grad;
      const torch::Tensor computed = reference->token_logprobs(tokens, pin.scored);
      pin.ref_logprobs = torch::where(pin.ref_logprobs.isnan(), computed, pin.ref_logprobs);
    }
    const torch::Tensor lp = model->token_logprobs(tokens, pin.scored);
    PolicyTerms terms = policy_loss(lp, pin, pc);
    terms.loss.backward();
    totals.add(terms);
  }
  StepStats st = totals.stats();
  st.n_tokens = n_tokens;
  st.n_sequences = int64_t(n);
  double adv_sum = 0;
  for (float a : adv) adv_sum += a;
  st.mean_advantage = adv_sum / double(n);
  return st;
}

// ---- optimizer step -----------------------------------------------------------------------

StepStats Trainer::Impl::update(StepStats st) {
  const double lr = learning_rate(config.optimizer, step);
  st.grad_norm = clip_grad_norm(model->parameters(), config.optimizer.max_grad_norm);
  optimizer->step(lr, config.optimizer);
  ++step;
  st.lr = lr;
  st.step = step;
  return st;
}

Expected<StepStats> Trainer::sft_step(const SftBatch& batch) {
  impl_->zero_grad();
  TIDAL_ASSIGN_OR_RETURN(StepStats st, impl_->sft(batch));
  return impl_->update(st);
}

Expected<StepStats> Trainer::grpo_step(const GrpoBatch& batch) {
  impl_->zero_grad();
  TIDAL_ASSIGN_OR_RETURN(StepStats st, impl_->grpo(batch));
  return impl_->update(st);
}

Expected<StepStats> Trainer::sft_gradients(const SftBatch& batch) {
  impl_->zero_grad();
  TIDAL_ASSIGN_OR_RETURN(StepStats st, impl_->sft(batch));
  st.grad_norm = clip_grad_norm(impl_->model->parameters(), 0.0);
  return st;
}

Expected<StepStats> Trainer::grpo_gradients(const GrpoBatch& batch) {
  impl_->zero_grad();
  TIDAL_ASSIGN_OR_RETURN(StepStats st, impl_->grpo(batch));
  st.grad_norm = clip_grad_norm(impl_->model->parameters(), 0.0);
  return st;
}

// ---- inference-side helpers ---------------------------------------------------------------

Expected<std::vector<std::vector<float>>> Trainer::logprobs(const std::vector<std::vector<int32_t>>& sequences) {
  const int64_t V = model_config().vocab_size;
  std::vector<const std::vector<int32_t>*> seqs;
  std::vector<size_t> lengths;
  for (size_t i = 0; i < sequences.size(); ++i) {
    TIDAL_RETURN_IF_ERROR(check_tokens(sequences[i], V, "logprobs: sequence " + std::to_string(i)));
    seqs.push_back(&sequences[i]);
    lengths.push_back(sequences[i].size());
  }
  torch::NoGradGuard no_grad;
  std::vector<std::vector<float>> out(sequences.size());
  for (const MicroBatch& mb : split(lengths, impl_->config.micro_batch_seqs)) {
    torch::Tensor scored = torch::zeros({int64_t(mb.rows.size()), mb.T - 1}, torch::kBool);
    for (size_t r = 0; r < mb.rows.size(); ++r) scored[int64_t(r)].narrow(0, 0, int64_t(lengths[mb.rows[r]]) - 1).fill_(true);
    const torch::Tensor lp = impl_->model->token_logprobs(token_tensor(mb, seqs), scored).contiguous();
    const float* d = lp.data_ptr<float>();
    for (size_t r = 0; r < mb.rows.size(); ++r) {
      const size_t n = lengths[mb.rows[r]] - 1;
      out[mb.rows[r]].assign(d + int64_t(r) * (mb.T - 1), d + int64_t(r) * (mb.T - 1) + int64_t(n));
    }
  }
  return out;
}

Expected<std::vector<float>> Trainer::next_token_logprobs(const std::vector<int32_t>& tokens) {
  const int64_t V = model_config().vocab_size;
  if (tokens.empty()) return invalid_argument("next_token_logprobs: empty sequence");
  for (int32_t t : tokens) {
    if (t < 0 || t >= V) return invalid_argument("next_token_logprobs: token " + std::to_string(t) + " out of range");
  }
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::empty({1, int64_t(tokens.size())}, torch::kInt64);
  for (size_t i = 0; i < tokens.size(); ++i) ids.data_ptr<int64_t>()[i] = tokens[i];
  const torch::Tensor lp = impl_->model->log_softmax(ids).contiguous();
  return std::vector<float>(lp.data_ptr<float>(), lp.data_ptr<float>() + lp.numel());
}

std::vector<ParamView> Trainer::parameters() const {
  std::vector<ParamView> out;
  const auto& names = impl_->model->names();
  const auto& params = impl_->model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    out.push_back({names[i], params[i].sizes().vec(), params[i].data_ptr<float>(), params[i].numel()});
  }
  return out;
}

std::vector<ParamView> Trainer::gradients() const {
  std::vector<ParamView> out;
  const auto& names = impl_->model->names();
  const auto& params = impl_->model->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& g = params[i].grad();
    out.push_back({names[i], params[i].sizes().vec(), g.defined() ? g.data_ptr<float>() : nullptr, params[i].numel()});
  }
  return out;
}

// ---- saving and checkpoints ---------------------------------------------------------------

Status Trainer::save_model(const std::string& dir, DType dtype) const {
  const fs::path src(impl_->config.model_dir), out(dir);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return io_error(dir + ": cannot create: " + ec.message());
  TIDAL_ASSIGN_OR_RETURN(std::string config_text, read_text(src / "config.json"));
  json config = json::parse(config_text, nullptr, false);
  if (!config.is_object()) return invalid_argument((src / "config.json").string() + ": not a JSON object");
  config["torch_dtype"] = torch_dtype_name(dtype);
  if (impl_->model->tied_lm_head()) config["tie_word_embeddings"] = true;
  TIDAL_RETURN_IF_ERROR(write_text(out / "config.json", config.dump(2) + "\n"));
  for (const char* f : kSideFiles) {
    if (fs::exists(src / f) && !fs::equivalent(src, out, ec)) {
      fs::copy_file(src / f, out / f, fs::copy_options::overwrite_existing, ec);
      if (ec) return io_error((out / f).string() + ": cannot copy: " + ec.message());
    }
  }
  fs::remove(out / "model.safetensors.index.json", ec);  // a sharded model saved over stays loadable
  const std::vector<ParamView> params = parameters();
  return write_weights_file(params, (out / "model.safetensors").string(), dtype, /*bucket_bytes=*/0, {{"format", "pt"}});
}

Status Trainer::save_checkpoint(const std::string& dir) const {
  const fs::path final_dir(dir);
  const fs::path tmp = final_dir.string() + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  TIDAL_RETURN_IF_ERROR(save_model(tmp.string(), DType::kF32));

  // Optimizer moments and RNG state in one safetensors file.
  const Impl& im = *impl_;
  const auto& names = im.model->names();
  std::vector<torch::Tensor> keep;  // owns the bytes the writer reads
  std::vector<TensorToWrite> tensors;
  auto add = [&](const std::string& name, const torch::Tensor& t, DType d) {
    keep.push_back(t.contiguous());
    const torch::Tensor& k = keep.back();
    tensors.push_back({name, d, k.sizes().vec(),
                       std::span<const uint8_t>(static_cast<const uint8_t*>(k.data_ptr()), size_t(k.nbytes()))});
  };
  if (im.optimizer->has_state()) {
    for (size_t i = 0; i < names.size(); ++i) {
      add("exp_avg." + names[i], im.optimizer->exp_avg()[i], DType::kF32);
      add("exp_avg_sq." + names[i], im.optimizer->exp_avg_sq()[i], DType::kF32);
    }
  }
  add("rng.trainer", im.rng.get_state(), DType::kU8);
  TIDAL_RETURN_IF_ERROR(write_safetensors((tmp / kOptimizerFile).string(), tensors));

  const json state = {{"format", kCheckpointFormat},
                      {"version", kCheckpointVersion},
                      {"step", im.step},
                      {"adam_steps", im.optimizer->n_steps()},
                      {"n_parameters", n_parameters()},
                      {"model_dir", im.config.model_dir},
                      {"lr_next", learning_rate(im.config.optimizer, im.step)}};
  TIDAL_RETURN_IF_ERROR(write_text(tmp / kStateFile, state.dump(2) + "\n"));

  // Swap into place: the old checkpoint (if any) is removed only once the new one is complete.
  const fs::path old = final_dir.string() + ".old";
  fs::remove_all(old, ec);
  if (fs::exists(final_dir)) {
    fs::rename(final_dir, old, ec);
    if (ec) return io_error(dir + ": cannot move the previous checkpoint aside: " + ec.message());
  }
  fs::rename(tmp, final_dir, ec);
  if (ec) return io_error(dir + ": cannot rename the checkpoint into place: " + ec.message());
  fs::remove_all(old, ec);
  return Status::ok();
}

Status Trainer::load_checkpoint(const std::string& dir) {
  const fs::path d(dir);
  Impl& im = *impl_;
  TIDAL_ASSIGN_OR_RETURN(std::string state_text, read_text(d / kStateFile));
  const json state = json::parse(state_text, nullptr, false);
  const std::string state_path = (d / kStateFile).string();
  if (!state.is_object() || state.value("format", "") != kCheckpointFormat) {
    return invalid_argument(state_path + ": not a Tidal trainer checkpoint");
  }
  if (state.value("version", 0) != kCheckpointVersion) {
    return unimplemented(state_path + ": checkpoint version " + std::to_string(state.value("version", 0)) +
                         " (this build reads version " + std::to_string(kCheckpointVersion) + ")");
  }
  if (!state.contains("step") || !state["step"].is_number_integer() || !state.contains("adam_steps") ||
      !state["adam_steps"].is_number_integer()) {
    return invalid_argument(state_path + ": missing 'step' or 'adam_steps'");
  }
  const int64_t step = state["step"].get<int64_t>(), adam_steps = state["adam_steps"].get<int64_t>();

  // Read and check the optimizer state before touching anything.
  const std::string opt_path = (d / kOptimizerFile).string();
  TIDAL_ASSIGN_OR_RETURN(SafetensorsFile opt, SafetensorsFile::open(opt_path));
  const auto& names = im.model->names();
  const auto& params = im.model->parameters();
  std::vector<torch::Tensor> m, v;
  if (adam_steps > 0) {
    for (size_t i = 0; i < names.size(); ++i) {
      for (const std::string prefix : {"exp_avg.", "exp_avg_sq."}) {
        const TensorInfo* t = opt.find(prefix + names[i]);
        if (!t) return data_loss(opt_path + ": missing tensor '" + prefix + names[i] + "'");
        if (t->dtype != DType::kF32 || t->shape != params[i].sizes().vec()) {
          return data_loss(opt_path + ": tensor '" + prefix + names[i] + "' has the wrong dtype or shape");
        }
        torch::Tensor x = torch::empty(params[i].sizes(), torch::kFloat32);
        std::memcpy(x.data_ptr<float>(), opt.data(*t), t->nbytes);
        (prefix == std::string("exp_avg.") ? m : v).push_back(std::move(x));
      }
    }
  }
  const TensorInfo* rng = opt.find("rng.trainer");
  if (!rng || rng->dtype != DType::kU8) return data_loss(opt_path + ": missing tensor 'rng.trainer' (U8)");
  torch::Tensor rng_state = torch::empty({rng->numel()}, torch::kUInt8);
  std::memcpy(rng_state.data_ptr<uint8_t>(), opt.data(*rng), rng->nbytes);
  at::Generator restored = at::make_generator<at::CPUGeneratorImpl>(0);
  try {
    restored.set_state(rng_state);
  } catch (const std::exception& e) {
    return data_loss(opt_path + ": tensor 'rng.trainer' is not a CPU generator state");
  }

  TIDAL_RETURN_IF_ERROR(im.model->copy_weights_from(dir));  // checks everything before copying
  if (adam_steps > 0) im.optimizer->set_state(adam_steps, std::move(m), std::move(v));
  else im.optimizer->set_state(0, {}, {});
  im.rng = restored;
  im.step = step;
  return Status::ok();
}

}  // namespace tidal::rl
