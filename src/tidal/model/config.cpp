#include "tidal/model/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tidal/model/arch/architecture.h"

namespace tidal {

using json = nlohmann::json;

namespace {

Status read_int(const json& j, const char* key, const std::string& label, int64_t* out, bool required,
                int64_t min_value = 1) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return invalid_argument(label + ": missing field '" + key + "'");
    return Status::ok();
  }
  if (!it->is_number_integer()) return invalid_argument(label + ": field '" + key + "' is not an integer");
  int64_t v = it->get<int64_t>();
  if (v < min_value) {
    return invalid_argument(label + ": field '" + key + "' is " + std::to_string(v) + ", must be >= " +
                            std::to_string(min_value));
  }
  *out = v;
  return Status::ok();
}

Status read_double(const json& j, const char* key, const std::string& label, double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::ok();
  if (!it->is_number()) return invalid_argument(label + ": field '" + key + "' is not a number");
  *out = it->get<double>();
  return Status::ok();
}

}  // namespace

Expected<ModelConfig> ModelConfig::load(const std::string& path) {
  std::string file = path;
  if (!std::filesystem::exists(path)) return not_found(path + ": no such directory");
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  std::ifstream in(file);
  if (!in) return not_found(file + ": cannot read (is this a Hugging Face model folder?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), file);
}

Expected<ModelConfig> ModelConfig::parse(const std::string& text, const std::string& label) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return invalid_argument(label + ": not valid JSON");
  if (!j.is_object()) return invalid_argument(label + ": not a JSON object");
  ModelConfig c;
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
    return invalid_argument(label + ": missing field 'architectures' (a list naming the model class)");
  }
  c.architecture = (*archs)[0].get<std::string>();
  const ArchitectureSpec* spec = find_architecture(c.architecture);
  if (!spec) {
    return unimplemented(label + ": unsupported architecture '" + c.architecture + "' (supported: " +
                         supported_architectures() + ")");
  }
  TIDAL_RETURN_IF_ERROR(read_int(j, "vocab_size", label, &c.vocab_size, true));
  TIDAL_RETURN_IF_ERROR(read_int(j, "hidden_size", label, &c.hidden_size, true));
  TIDAL_RETURN_IF_ERROR(read_int(j, "intermediate_size", label, &c.intermediate_size, true));
  TIDAL_RETURN_IF_ERROR(read_int(j, "num_hidden_layers", label, &c.n_layers, true));
  TIDAL_RETURN_IF_ERROR(read_int(j, "num_attention_heads", label, &c.n_heads, true));
  c.n_kv_heads = c.n_heads;
  TIDAL_RETURN_IF_ERROR(read_int(j, "num_key_value_heads", label, &c.n_kv_heads, false));
  if (c.n_heads % c.n_kv_heads != 0) {
    return invalid_argument(label + ": num_attention_heads (" + std::to_string(c.n_heads) +
                            ") is not a multiple of num_key_value_heads (" + std::to_string(c.n_kv_heads) + ")");
  }
  if (c.hidden_size % c.n_heads != 0 && j.find("head_dim") == j.end()) {
    return invalid_argument(label + ": hidden_size is not a multiple of num_attention_heads and no 'head_dim' is given");
  }
  c.head_dim = c.hidden_size / c.n_heads;
  TIDAL_RETURN_IF_ERROR(read_int(j, "head_dim", label, &c.head_dim, false));
  if (c.head_dim % 2 != 0) return invalid_argument(label + ": field 'head_dim' must be even for RoPE");
  TIDAL_RETURN_IF_ERROR(read_int(j, "max_position_embeddings", label, &c.max_position_embeddings, false));
  TIDAL_RETURN_IF_ERROR(read_double(j, "rms_norm_eps", label, &c.rms_norm_eps));
  TIDAL_RETURN_IF_ERROR(read_double(j, "rope_theta", label, &c.rope_theta));
  if (!(c.rope_theta > 0)) return invalid_argument(label + ": field 'rope_theta' must be positive");
  if (!(c.rms_norm_eps >= 0)) return invalid_argument(label + ": field 'rms_norm_eps' must be >= 0");
  if (auto t = j.find("tie_word_embeddings"); t != j.end() && !t->is_null()) {
    if (!t->is_boolean()) return invalid_argument(label + ": field 'tie_word_embeddings' is not a boolean");
    c.tie_word_embeddings = t->get<bool>();
  }
  c.qkv_bias = spec->qkv_bias;
  if (auto t = j.find("attention_bias"); t != j.end() && t->is_boolean() && t->get<bool>()) {
    c.qkv_bias = true;
    c.o_bias = !spec->qkv_bias;  // Qwen2's fixed q/k/v bias never extends to o_proj
  }
  if (auto t = j.find("mlp_bias"); t != j.end() && t->is_boolean()) c.mlp_bias = t->get<bool>();
  c.qk_norm = spec->qk_norm;
  if (auto t = j.find("torch_dtype"); t != j.end() && t->is_string()) c.torch_dtype = t->get<std::string>();
  if (auto t = j.find("bos_token_id"); t != j.end() && t->is_number_integer()) c.bos_token_id = t->get<int32_t>();
  if (auto t = j.find("eos_token_id"); t != j.end()) {
    if (t->is_number_integer()) c.eos_token_ids.push_back(t->get<int32_t>());
    if (t->is_array()) {
      for (const auto& e : *t) if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int32_t>());
    }
  }
  TIDAL_ASSIGN_OR_RETURN(c.quantization, parse_checkpoint_quantization(j, label));
  if (auto rs = j.find("rope_scaling"); rs != j.end() && !rs->is_null()) {
    if (!rs->is_object()) return invalid_argument(label + ": field 'rope_scaling' is not an object");
    std::string type;
    if (auto t = rs->find("rope_type"); t != rs->end() && t->is_string()) type = t->get<std::string>();
    else if (auto t2 = rs->find("type"); t2 != rs->end() && t2->is_string()) type = t2->get<std::string>();
    if (type == "llama3") {
      c.rope_scaling.type = type;
      const json& r = *rs;
      TIDAL_RETURN_IF_ERROR(read_double(r, "factor", label + " rope_scaling", &c.rope_scaling.factor));
      TIDAL_RETURN_IF_ERROR(read_double(r, "low_freq_factor", label + " rope_scaling", &c.rope_scaling.low_freq_factor));
      TIDAL_RETURN_IF_ERROR(read_double(r, "high_freq_factor", label + " rope_scaling", &c.rope_scaling.high_freq_factor));
      TIDAL_RETURN_IF_ERROR(read_int(r, "original_max_position_embeddings", label + " rope_scaling",
                                     &c.rope_scaling.original_max_position_embeddings, true));
      if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor)) {
        return invalid_argument(label + ": rope_scaling high_freq_factor must exceed low_freq_factor");
      }
    } else if (type != "default" && !type.empty()) {
      return unimplemented(label + ": rope_scaling type '" + type + "' is not supported (supported: llama3)");
    }
  }
  return c;
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(rope_theta, double(2 * i) / double(head_dim));
    if (rope_scaling.type == "llama3") {
      // Llama 3.1: keep high frequencies, divide low ones by `factor`, blend in between.
      const double pi = 3.14159265358979323846;
      const double old_ctx = double(rope_scaling.original_max_position_embeddings);
      const double low_wavelen = old_ctx / rope_scaling.low_freq_factor;
      const double high_wavelen = old_ctx / rope_scaling.high_freq_factor;
      const double wavelen = 2 * pi / f;
      if (wavelen > low_wavelen) {
        f = f / rope_scaling.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - rope_scaling.low_freq_factor) /
                              (rope_scaling.high_freq_factor - rope_scaling.low_freq_factor);
        f = (1 - smooth) * f / rope_scaling.factor + smooth * f;
      }
    }
    inv[size_t(i)] = float(f);
  }
  return inv;
}

}  // namespace tidal
