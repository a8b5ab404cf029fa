#include "tidal/model/model_init.h"

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "tidal/model/arch/architecture.h"
#include "tidal/model/safetensors.h"
#ifdef TIDAL_HAVE_TOKENIZER
#include "tidal/tokenizer/synthetic.h"
#endif

namespace tidal {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// splitmix64 stream + Box-Muller: the same numbers on every platform and compiler.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t s_;
};

struct PendingTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

PendingTensor make_tensor(const std::string& name, std::vector<int64_t> shape, DType dtype, Rng& rng,
                          double mean, double std) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  PendingTensor t{name, std::move(shape), std::vector<uint8_t>(size_t(n) * dtype_size(dtype))};
  for (int64_t i = 0; i < n; ++i) {
    const float v = float(mean + std * rng.normal());
    switch (dtype) {
      case DType::kF32: std::memcpy(t.bytes.data() + i * 4, &v, 4); break;
      case DType::kF16: { uint16_t h = f32_to_f16(v); std::memcpy(t.bytes.data() + i * 2, &h, 2); break; }
      case DType::kBF16: { uint16_t h = f32_to_bf16(v); std::memcpy(t.bytes.data() + i * 2, &h, 2); break; }
      default: break;
    }
  }
  return t;
}

// Atomic replacement (temporary file + rename), like write_safetensors.
Status write_text(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp." + std::to_string(::getpid());
  std::ofstream out(tmp, std::ios::trunc);
  out << text;
  out.close();
  std::error_code ec;
  if (!out) {
    fs::remove(tmp, ec);
    return io_error(p.string() + ": write failed");
  }
  fs::rename(tmp, p, ec);
  if (ec) return io_error(p.string() + ": cannot rename into place: " + ec.message());
  return Status::ok();
}

}  // namespace

Status write_random_model(const RandomModelSpec& s, const std::string& out_dir, bool overwrite) {
  const ArchitectureSpec* arch = find_architecture_family(s.family);
  if (!arch) return invalid_argument("unknown architecture family '" + s.family + "' (llama, qwen2, qwen3)");
  if (s.dtype != DType::kF32 && s.dtype != DType::kF16 && s.dtype != DType::kBF16) {
    return invalid_argument("model init: dtype must be f32, f16 or bf16");
  }
  const int64_t hd = s.head_dim > 0 ? s.head_dim : (s.n_heads > 0 ? s.hidden / s.n_heads : 0);
  if (s.n_layers < 1 || s.hidden < 2 || s.intermediate < 1 || s.n_heads < 1 || s.n_kv_heads < 1 || hd < 2 ||
      hd % 2 || s.n_heads % s.n_kv_heads || s.vocab < kMinSyntheticVocabSize || s.n_shards < 1) {
    return invalid_argument(
        "model init: need layers >= 1, heads divisible by kv-heads, an even head_dim, vocab >= 259 (256 bytes + 3 special tokens), shards >= 1");
  }
  const fs::path dir(out_dir);
  if (fs::exists(dir / "config.json") && !overwrite) {
    return invalid_argument(out_dir + ": already holds a model (config.json); pass --force to overwrite");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return io_error(out_dir + ": cannot create: " + ec.message());

  const int64_t H = s.hidden, F = s.intermediate, V = s.vocab;
  const int64_t q_dim = s.n_heads * hd, kv_dim = s.n_kv_heads * hd;
  Rng rng(s.seed * 0x100000001b3ull + 1);
  // Scaled so a random model's logits are neither flat nor saturated: matrices ~ N(0, 1/fan_in),
  // embedding (= LM head when tied) ~ N(0, 9/hidden) for logits of std ~3, norms ~ 1 +- 0.1 (so
  // a norm weight that is ignored or misapplied shows in the logits).
  std::vector<PendingTensor> ts;
  auto mat = [&](const std::string& n, int64_t out, int64_t in) {
    ts.push_back(make_tensor(n, {out, in}, s.dtype, rng, 0.0, 1.0 / std::sqrt(double(in))));
  };
  auto norm = [&](const std::string& n, int64_t d) { ts.push_back(make_tensor(n, {d}, s.dtype, rng, 1.0, 0.1)); };
  auto bias = [&](const std::string& n, int64_t d) { ts.push_back(make_tensor(n, {d}, s.dtype, rng, 0.0, 0.1)); };
  const double head_std = 3.0 / std::sqrt(double(H));
  ts.push_back(make_tensor("model.embed_tokens.weight", {V, H}, s.dtype, rng, 0.0, head_std));
  for (int64_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    norm(p + "input_layernorm.weight", H);
    mat(p + "self_attn.q_proj.weight", q_dim, H);
    mat(p + "self_attn.k_proj.weight", kv_dim, H);
    mat(p + "self_attn.v_proj.weight", kv_dim, H);
    if (arch->qkv_bias) {
      bias(p + "self_attn.q_proj.bias", q_dim);
      bias(p + "self_attn.k_proj.bias", kv_dim);
      bias(p + "self_attn.v_proj.bias", kv_dim);
    }
    if (arch->qk_norm) {
      norm(p + "self_attn.q_norm.weight", hd);
      norm(p + "self_attn.k_norm.weight", hd);
    }
    mat(p + "self_attn.o_proj.weight", H, q_dim);
    norm(p + "post_attention_layernorm.weight", H);
    mat(p + "mlp.gate_proj.weight", F, H);
    mat(p + "mlp.up_proj.weight", F, H);
    mat(p + "mlp.down_proj.weight", H, F);
  }
  norm("model.norm.weight", H);
  if (!s.tie_embeddings) ts.push_back(make_tensor("lm_head.weight", {V, H}, s.dtype, rng, 0.0, head_std));

  // Shards: contiguous runs of tensors of about equal byte size.
  uint64_t total = 0;
  for (const auto& t : ts) total += t.bytes.size();
  const int n_shards = s.n_shards;
  json weight_map = json::object();
  size_t next = 0;
  for (int shard = 0; shard < n_shards; ++shard) {
    const uint64_t budget = (total + uint64_t(n_shards) - 1) / uint64_t(n_shards);
    std::vector<TensorToWrite> group;
    uint64_t bytes = 0;
    while (next < ts.size() && (group.empty() || bytes + ts[next].bytes.size() <= budget || shard == n_shards - 1)) {
      group.push_back({ts[next].name, s.dtype, ts[next].shape, ts[next].bytes});
      bytes += ts[next].bytes.size();
      ++next;
    }
    char name[64];
    if (n_shards == 1) {
      std::snprintf(name, sizeof(name), "model.safetensors");
    } else {
      std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", shard + 1, n_shards);
    }
    for (const auto& g : group) weight_map[g.name] = name;
    TIDAL_RETURN_IF_ERROR(write_safetensors((dir / name).string(), group, {{"format", "pt"}}));
  }
  if (n_shards > 1) {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    TIDAL_RETURN_IF_ERROR(write_text(dir / "model.safetensors.index.json", index.dump(2)));
  }

  const char* torch_dtype = s.dtype == DType::kF32 ? "float32" : s.dtype == DType::kF16 ? "float16" : "bfloat16";
  // The synthetic tokenizer's special tokens are the last three ids:
  // <|endoftext|> = V-3, <|im_start|> = V-2, <|im_end|> = V-1.
  json config = {
      {"architectures", {arch->hf_class}},
      {"model_type", s.family},
      {"vocab_size", V},
      {"hidden_size", H},
      {"intermediate_size", F},
      {"num_hidden_layers", s.n_layers},
      {"num_attention_heads", s.n_heads},
      {"num_key_value_heads", s.n_kv_heads},
      {"head_dim", hd},
      {"hidden_act", "silu"},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", s.rope_theta},
      {"max_position_embeddings", s.max_position},
      {"tie_word_embeddings", s.tie_embeddings},
      {"attention_bias", arch->qkv_bias},
      {"torch_dtype", torch_dtype},
      {"bos_token_id", V - 3},
      {"eos_token_id", {V - 1, V - 3}},
  };
  if (s.llama3_rope_scaling) {
    config["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                              {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 256}};
  }
  TIDAL_RETURN_IF_ERROR(write_text(dir / "config.json", config.dump(2)));
  json gen = {{"bos_token_id", V - 3}, {"eos_token_id", {V - 1, V - 3}}};
  TIDAL_RETURN_IF_ERROR(write_text(dir / "generation_config.json", gen.dump(2)));
#ifdef TIDAL_HAVE_TOKENIZER
  TIDAL_RETURN_IF_ERROR(write_text(dir / "tokenizer.json", make_synthetic_tokenizer_json(int32_t(V))));
  TIDAL_RETURN_IF_ERROR(write_text(dir / "tokenizer_config.json", make_synthetic_tokenizer_config_json()));
#endif
  return Status::ok();
}

}  // namespace tidal
