#include "tidal/model/quant_checkpoint.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tidal/core/e8m0.h"
#include "tidal/core/fp8.h"

#include "tidal/core/tensor.h"

namespace tidal {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {


std::string where(const TensorRef& t) { return *t.file + ": tensor '" + t.info->name + "'"; }

bool is_dense(DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; }

// The element code dtype each format is stored as.
DType code_dtype(QuantFormat f) {
  switch (f) {
    case QuantFormat::kInt8:
      return DType::kI8;
    case QuantFormat::kFp8E4M3:
      return DType::kF8E4M3;
    case QuantFormat::kFp8E5M2:
      return DType::kF8E5M2;
    case QuantFormat::kNvFp4:
    case QuantFormat::kMxFp4:
      return DType::kU8;
  }
  return DType::kU8;
}

DType scale_dtype(ScaleType s) {
  switch (s) {
    case ScaleType::kF32:
      return DType::kF32;
    case ScaleType::kFp8E4M3:
      return DType::kF8E4M3;
    case ScaleType::kE8M0:
      return DType::kU8;  // E8M0 bytes; U8 so that older safetensors readers accept the file
  }
  return DType::kU8;
}

// Rejects codes the kernels must never see: FP8 NaN (E4M3 S.1111.111; E5M2 exponent 11111, which
// is Inf or NaN) and int8 -128 (outside the symmetric [-127, 127]). Names the first bad element.
Status check_codes(const TensorRef& t, QuantFormat f, int64_t n_in) {
  const uint8_t* p = static_cast<const uint8_t*>(t.data);
  const size_t n = t.info->nbytes;
  uint8_t mask = 0, bad = 0;
  const char* what = "";
  switch (f) {
    case QuantFormat::kFp8E4M3:
      mask = 0x7f, bad = 0x7f, what = "a NaN";
      break;
    case QuantFormat::kFp8E5M2:
      mask = 0x7c, bad = 0x7c, what = "an Inf/NaN";
      break;
    case QuantFormat::kInt8:
      mask = 0xff, bad = 0x80, what = "-128, outside the symmetric int8 range";
      break;
    default:
      return Status::ok();  // every FP4 code is a finite value
  }
  bool any = false;
  for (size_t i = 0; i < n; ++i) any |= (p[i] & mask) == bad;  // NOTE: branch-free so it vectorizes
  if (!any) return Status::ok();
  size_t i = 0;
  while ((p[i] & mask) != bad) ++i;
  char code[8];
  std::snprintf(code, sizeof code, "0x%02x", p[i]);
  return data_loss(where(t) + ": code " + code + " at [" + std::to_string(int64_t(i) / n_in) + ", " +
                   std::to_string(int64_t(i) % n_in) + "] is " + what + "; quantized weights must be finite");
}

Status check_scale_values(const TensorRef& t, ScaleType type, const void* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    bool ok = true;
    switch (type) {
      case ScaleType::kF32:
        ok = std::isfinite(static_cast<const float*>(data)[i]);
        break;
      case ScaleType::kFp8E4M3:
        ok = (static_cast<const uint8_t*>(data)[i] & 0x7f) != kFp8E4M3NanCode;
        break;
      case ScaleType::kE8M0:
        ok = static_cast<const uint8_t*>(data)[i] != kE8M0NanCode;
        break;
    }
    if (!ok) return data_loss(where(t) + ": scale " + std::to_string(i) + " is not finite");
  }
  return Status::ok();
}

// The scale tensor `name` with exactly `shape` (also accepted: a scalar grid of one element as []
// or [1]); the error explains which grid the weight needs.
Expected<TensorRef> get_scales(const WeightStore& store, const std::string& name, const TensorRef& weight,
                               const std::vector<int64_t>& shape, const std::string& why) {
  if (!store.contains(name)) {
    return not_found(where(weight) + " is quantized but its scale tensor '" + name + "' is missing");
  }
  auto any = store.get_any(name);
  if (!any) return any.status();
  const std::vector<int64_t>& got = any->info->shape;
  const bool scalar_ok = shape == std::vector<int64_t>{1, 1} && any->info->numel() == 1 && got.size() <= 2;
  if (got != shape && !scalar_ok) {
    return data_loss(*any->file + ": tensor '" + name + "' has shape " + shape_string(got) + "; weight '" +
                     weight.info->name + "' " + shape_string(weight.info->shape) + " " + why + " needs " +
                     shape_string(shape));
  }
  return any;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

Expected<std::optional<QuantMatrix>> read_fp8(const WeightStore& store, const CheckpointQuantization& q,
                                              const TensorRef& w, int64_t n_out, int64_t n_in) {
  const std::string& name = w.info->name;
  QuantFormat f;
  if (w.info->dtype == DType::kF8E4M3) {
    f = QuantFormat::kFp8E4M3;
  } else if (w.info->dtype == DType::kF8E5M2) {
    f = QuantFormat::kFp8E5M2;
  } else {
    return data_loss(where(w) + " has dtype " + dtype_name(w.info->dtype) +
                     "; quant_method fp8 stores weights as F8_E4M3 or F8_E5M2 (or F32/F16/BF16 unquantized)");
  }
  TIDAL_RETURN_IF_ERROR(check_codes(w, f, n_in));
  QuantLayout l;
  l.format = f;
  l.n_out = n_out;
  l.n_in = n_in;
  l.bits = 8;
  l.packing = Packing::kOnePerByte;
  l.row_bytes = n_in;
  l.scale_type = ScaleType::kF32;
  std::string why = "with one scale per tensor";
  if (q.fp8_block) {
    l.block_rows = std::min(q.fp8_block->first, n_out);
    l.block_cols = std::min(q.fp8_block->second, n_in);
    why = "with weight_block_size [" + std::to_string(q.fp8_block->first) + ", " +
          std::to_string(q.fp8_block->second) + "]";
  } else {
    l.block_rows = n_out;
    l.block_cols = n_in;
  }
  l.n_scale_rows = ceil_div(n_out, l.block_rows);
  l.n_scale_cols = ceil_div(n_in, l.block_cols);
  const std::string scale_name =
      name.substr(0, name.size() - std::string("weight").size()) + "weight_scale_inv";
  TIDAL_ASSIGN_OR_RETURN(TensorRef s,
                         get_scales(store, scale_name, w, {l.n_scale_rows, l.n_scale_cols}, why));
  QuantMatrix m;
  const size_t n_scales = size_t(l.n_scale_rows * l.n_scale_cols);
  const void* scales = s.data;
  if (s.info->dtype == DType::kBF16 || s.info->dtype == DType::kF16) {
    m.converted_scales.resize(n_scales);
    const uint16_t* p = static_cast<const uint16_t*>(s.data);
    for (size_t i = 0; i < n_scales; ++i) {
      m.converted_scales[i] = s.info->dtype == DType::kBF16 ? bf16_to_f32(p[i]) : f16_to_f32(p[i]);
    }
    scales = m.converted_scales.data();
  } else if (s.info->dtype != DType::kF32) {
    return data_loss(where(s) + " has dtype " + dtype_name(s.info->dtype) +
                     "; weight_scale_inv must be F32, BF16 or F16");
  }
  TIDAL_RETURN_IF_ERROR(check_scale_values(s, ScaleType::kF32, scales, n_scales));
  TIDAL_ASSIGN_OR_RETURN(
      m.tensor, QuantizedTensor::wrap(l, w.data, w.info->nbytes, scales, n_scales * 4, 1.0f, nullptr, 0,
                                      *w.file + ": tensor '" + name + "'"));
  return std::optional<QuantMatrix>(std::move(m));
}

Expected<std::optional<QuantMatrix>> read_tidal(const WeightStore& store, const CheckpointQuantization& q,
                                                const TensorRef& w, int64_t n_out, int64_t n_in) {
  const std::string& name = w.info->name;
  const QuantFormatInfo& info = quant_format_info(q.options.format);
  auto layout = QuantizedTensor::make_layout(q.options, n_out, n_in);
  if (!layout) return data_loss(where(w) + ": " + layout.status().message());
  const QuantLayout& l = *layout;
  const DType want = code_dtype(l.format);
  const std::vector<int64_t> want_shape = {n_out, l.row_bytes};
  if (w.info->dtype != want || w.info->shape != want_shape) {
    return data_loss(where(w) + " is " + dtype_name(w.info->dtype) + " " + shape_string(w.info->shape) + "; " +
                     info.name + " codes of a [" + std::to_string(n_out) + ", " + std::to_string(n_in) +
                     "] matrix are " + dtype_name(want) + " " + shape_string(want_shape));
  }
  TIDAL_RETURN_IF_ERROR(check_codes(w, l.format, n_in));
  const std::string base = name.substr(0, name.size() - std::string("weight").size());
  TIDAL_ASSIGN_OR_RETURN(TensorRef s,
                         get_scales(store, base + "weight_scale", w, {l.n_scale_rows, l.n_scale_cols},
                                    "in " + quant_options_name(q.options)));
  if (s.info->dtype != scale_dtype(l.scale_type)) {
    return data_loss(where(s) + " has dtype " + dtype_name(s.info->dtype) + "; " + info.name +
                     " scales are " + dtype_name(scale_dtype(l.scale_type)));
  }
  const size_t n_scales = size_t(l.n_scale_rows * l.n_scale_cols);
  TIDAL_RETURN_IF_ERROR(check_scale_values(s, l.scale_type, s.data, n_scales));
  float global = 1.0f;
  if (l.has_global_scale) {
    const std::string gname = base + "weight_scale_2";
    if (!store.contains(gname))
      return not_found(where(w) + " is " + info.name + " but '" + gname + "' is missing");
    TIDAL_ASSIGN_OR_RETURN(TensorRef g, store.get_any(gname));
    if (g.info->dtype != DType::kF32 || g.info->numel() != 1) {
      return data_loss(where(g) + " must be one F32 value (the global scale)");
    }
    std::memcpy(&global, g.data, 4);
    if (!std::isfinite(global)) return data_loss(where(g) + " is not finite");
  }
  QuantMatrix m;
  TIDAL_ASSIGN_OR_RETURN(
      m.tensor, QuantizedTensor::wrap(l, w.data, w.info->nbytes, s.data, s.info->nbytes, global, nullptr, 0,
                                      *w.file + ": tensor '" + name + "'"));
  return std::optional<QuantMatrix>(std::move(m));
}

Expected<std::string> read_text(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return not_found(p.string() + ": cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Expected<QuantMatrix> quantize_matrix(const TensorRef& t, const QuantOptions& options) {
  if (!is_dense(t.info->dtype)) {
    return invalid_argument(where(t) + " has dtype " + dtype_name(t.info->dtype) +
                            "; only F32/F16/BF16 matrices can be quantized on load");
  }
  if (t.info->shape.size() != 2) return invalid_argument(where(t) + " is not a matrix");
  const Tensor view =
      Tensor::contiguous(const_cast<void*>(t.data), t.info->dtype, {t.info->shape[0], t.info->shape[1]});
  auto q = quantize(view, options);
  if (!q) return Status(q.status().code(), where(t) + ": " + q.status().message());
  QuantMatrix m;
  m.tensor = std::move(q).value();
  return m;
}

Expected<std::optional<QuantMatrix>> read_quantized_matrix(const WeightStore& store,
                                                           const CheckpointQuantization& q,
                                                           const std::string& name, int64_t n_out,
                                                           int64_t n_in) {
  TIDAL_ASSIGN_OR_RETURN(TensorRef w, store.get_any(name));
  if (is_dense(w.info->dtype)) {
    if (w.info->shape != std::vector<int64_t>{n_out, n_in}) {
      return data_loss(where(w) + " has shape " + shape_string(w.info->shape) + ", the config implies " +
                       shape_string({n_out, n_in}));
    }
    return std::optional<QuantMatrix>();
  }
  if (!name.ends_with(".weight")) return data_loss(where(w) + ": only '.weight' matrices can be quantized");
  if (q.method == CheckpointQuantization::Method::kFp8) {
    if (w.info->shape != std::vector<int64_t>{n_out, n_in}) {
      return data_loss(where(w) + " has shape " + shape_string(w.info->shape) + ", the config implies " +
                       shape_string({n_out, n_in}));
    }
    return read_fp8(store, q, w, n_out, n_in);
  }
  if (q.method == CheckpointQuantization::Method::kTidal) return read_tidal(store, q, w, n_out, n_in);
  return data_loss(where(w) + " has dtype " + dtype_name(w.info->dtype) +
                   " but config.json has no quantization_config describing its scales");
}

Status write_quantized_checkpoint(const std::string& src_dir, const WeightStore& store,
                                  const std::map<std::string, const QuantizedTensor*>& quantized,
                                  const QuantOptions& options, const std::vector<std::string>& exclude,
                                  bool int8_activations, const std::string& out_dir) {
  const fs::path src(src_dir), out(out_dir);
  std::error_code ec;
  if (fs::exists(out) && fs::equivalent(src, out, ec)) {
    return invalid_argument(out_dir + ": the output folder is the model folder; choose another");
  }
  if (fs::exists(out / "model.safetensors.index.json")) {
    return invalid_argument(out_dir +
                            ": holds a sharded model (model.safetensors.index.json); choose an empty folder");
  }
  fs::create_directories(out, ec);
  if (ec) return io_error(out_dir + ": cannot create: " + ec.message());

  TIDAL_ASSIGN_OR_RETURN(std::string config_text, read_text(src / "config.json"));
  json config = json::parse(config_text, nullptr, false);
  if (config.is_discarded() || !config.is_object())
    return invalid_argument((src / "config.json").string() + ": not valid JSON");
  if (config.contains("quantization_config") && !config["quantization_config"].is_null()) {
    return invalid_argument(src_dir + ": is already quantized (config.json has a quantization_config)");
  }

  // Tensors in the store's (sorted) order; quantized matrices become codes + scales, in the
  // canonical layout whatever the model holds (copy_data / copy_scales, one tensor at a time).
  struct Piece {
    TensorSpec spec;
    std::span<const uint8_t> bytes;              // a tensor written as stored,
    const QuantizedTensor* codes_of = nullptr;   // or a quantized matrix's codes,
    const QuantizedTensor* scales_of = nullptr;  // or its scales
  };
  std::vector<Piece> pieces;
  std::vector<std::unique_ptr<float>> globals;
  auto add_quantized = [&](const std::string& name, const QuantizedTensor& t) {
    const QuantLayout& l = t.layout();
    const std::string base = name.substr(0, name.size() - std::string("weight").size());
    pieces.push_back({{name, code_dtype(l.format), {l.n_out, l.row_bytes}}, {}, &t});
    const std::vector<int64_t> scale_shape = {l.n_scale_rows, l.n_scale_cols};
    pieces.push_back({{base + "weight_scale", scale_dtype(l.scale_type), scale_shape}, {}, nullptr, &t});
    if (l.has_global_scale) {
      globals.push_back(std::make_unique<float>(t.global_scale()));
      pieces.push_back({{base + "weight_scale_2", DType::kF32, {}},
                        {reinterpret_cast<const uint8_t*>(globals.back().get()), 4}});
    }
  };
  for (const std::string& name : store.names()) {
    auto it = quantized.find(name);
    if (it != quantized.end()) {
      add_quantized(name, *it->second);
      continue;
    }
    TIDAL_ASSIGN_OR_RETURN(TensorRef t, store.get_any(name));
    pieces.push_back({{name, t.info->dtype, t.info->shape},
                      {static_cast<const uint8_t*>(t.data), size_t(t.info->nbytes)}});
  }
  bool untie = false;
  for (const auto& [name, t] : quantized) {
    if (store.contains(name)) continue;
    if (name != "lm_head.weight")
      return invalid_argument("quantized matrix '" + name + "' is not in the checkpoint");
    add_quantized(name, *t);  // a tied lm_head quantized apart from the (excluded) embedding
    untie = true;
  }
  {
    std::vector<TensorSpec> specs;
    for (const Piece& p : pieces) specs.push_back(p.spec);
    const std::string path = (out / "model.safetensors").string();
    TIDAL_ASSIGN_OR_RETURN(SafetensorsWriter w,
                           SafetensorsWriter::create(path, std::move(specs), {{"format", "pt"}}));
    std::vector<uint8_t> staged;
    for (const Piece& p : pieces) {
      if (p.codes_of || p.scales_of) {
        staged.resize(size_t(p.spec.nbytes()));
        if (p.codes_of) p.codes_of->copy_data(staged.data());
        if (p.scales_of) p.scales_of->copy_scales(staged.data());
        TIDAL_RETURN_IF_ERROR(w.append(staged));
      } else {
        TIDAL_RETURN_IF_ERROR(w.append(p.bytes));
      }
    }
    TIDAL_RETURN_IF_ERROR(w.finish());
  }

  config["quantization_config"] = tidal_quantization_config(options, exclude, int8_activations);
  if (untie) config["tie_word_embeddings"] = false;
  const fs::path cfg = out / "config.json";
  {
    std::ofstream o(cfg.string() + ".tmp", std::ios::trunc);
    o << config.dump(2) << "\n";
    o.close();
    if (!o) return io_error(cfg.string() + ": write failed");
  }
  fs::rename(cfg.string() + ".tmp", cfg, ec);
  if (ec) return io_error(cfg.string() + ": cannot rename into place: " + ec.message());
  // Everything else the folder needs (tokenizer, generation config), as is.
  for (const auto& e : fs::directory_iterator(src)) {
    const std::string fname = e.path().filename().string();
    if (!e.is_regular_file() || fname == "config.json" || fname.find(".safetensors") != std::string::npos)
      continue;
    fs::copy_file(e.path(), out / fname, fs::copy_options::overwrite_existing, ec);
    if (ec) return io_error((out / fname).string() + ": cannot copy: " + ec.message());
  }
  return Status::ok();
}

}  // namespace tidal
