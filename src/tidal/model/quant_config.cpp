#include "tidal/model/quant_config.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace tidal {

using json = nlohmann::json;

namespace {

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string item(text.substr(start, comma - start));
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

bool parse_i64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && *out > 0;
}

constexpr const char* kFormatList = "int8, w8a8, fp8, fp8_e4m3, fp8_e5m2, nvfp4, mxfp4";

}  // namespace

bool QuantizationOptions::excludes(std::string_view tensor_name) const {
  for (const std::string& e : exclude) {
    if (tensor_name.find(e) != std::string_view::npos) return true;
  }
  return false;
}

Expected<QuantizationOptions> parse_quantization_flags(std::string_view format,
                                                       const std::optional<std::string>& exclude) {
  QuantizationOptions o;
  if (exclude) {
    o.exclude = *exclude == "none" ? std::vector<std::string>{} : split_commas(*exclude);
  }
  if (format.empty() || format == "none") {
    if (exclude) return invalid_argument("--quantization-exclude needs --quantization");
    return o;
  }
  if (format == "w8a8") {
    o.quantize = QuantOptions{QuantFormat::kInt8, Granularity::kPerChannel, 128, 128};
    o.int8_activations = true;
    return o;
  }
  const size_t colon = format.find(':');
  const std::string_view fname = format.substr(0, colon);
  const auto f = quant_format_from_name(fname);
  if (!f) {
    return invalid_argument("--quantization: unknown format '" + std::string(fname) +
                            "' (known: " + kFormatList + ")");
  }
  QuantOptions q;
  q.format = *f;
  if (colon != std::string_view::npos) {
    const std::string_view g = format.substr(colon + 1);
    const bool fp4 = quant_format_info(*f).fixed_block_cols > 0;
    if (fp4 && g == "a8") {  // W4A8: int8 activations per token, int8 dot products
      o.quantize = q;
      o.int8_activations = true;
      return o;
    }
    if (fp4) {
      return invalid_argument("--quantization: " + std::string(fname) +
                              " has fixed blocks; no ':" + std::string(g) + "' granularity (only ':a8', int8 activations)");
    }
    if (g == "channel") {
      q.granularity = Granularity::kPerChannel;
    } else if (g == "tensor") {
      q.granularity = Granularity::kPerTensor;
    } else if (g.starts_with("block")) {
      const std::string_view dims = g.substr(5);
      const size_t x = dims.find('x');
      int64_t r = 0, c = 0;
      const bool ok = x == std::string_view::npos
                          ? parse_i64(dims, &r) && parse_i64(dims, &c)
                          : parse_i64(dims.substr(0, x), &r) && parse_i64(dims.substr(x + 1), &c);
      if (!ok) {
        return invalid_argument("--quantization: granularity '" + std::string(g) +
                                "' is not block<N> or block<R>x<C> with positive sizes");
      }
      q.granularity = Granularity::kBlock;
      q.block_rows = r;
      q.block_cols = c;
    } else {
      return invalid_argument("--quantization: unknown granularity '" + std::string(g) +
                              "' (channel, tensor, block128, block<R>x<C>)");
    }
  }
  o.quantize = q;
  return o;
}

std::string quant_options_name(const QuantOptions& o) {
  std::string s = quant_format_info(o.format).name;
  switch (o.granularity) {
    case Granularity::kDefault:
      break;
    case Granularity::kPerChannel:
      s += ":channel";
      break;
    case Granularity::kPerTensor:
      s += ":tensor";
      break;
    case Granularity::kBlock:
      s += ":block" + std::to_string(o.block_rows) + "x" + std::to_string(o.block_cols);
      break;
  }
  return s;
}

std::string quantization_name(const QuantOptions& o, bool int8_activations) {
  if (!int8_activations) return quant_options_name(o);
  return o.format == QuantFormat::kInt8 ? std::string("w8a8") : quant_options_name(o) + ":a8";
}

Expected<CheckpointQuantization> parse_checkpoint_quantization(const json& config, const std::string& label) {
  CheckpointQuantization q;
  auto it = config.find("quantization_config");
  if (it == config.end() || it->is_null()) return q;
  const std::string at = label + ": quantization_config";
  if (!it->is_object()) return invalid_argument(at + " is not an object");
  const json& qc = *it;
  auto m = qc.find("quant_method");
  if (m == qc.end() || !m->is_string()) return invalid_argument(at + " has no string 'quant_method'");
  q.method_name = m->get<std::string>();
  if (q.method_name == "fp8") {
    q.method = CheckpointQuantization::Method::kFp8;
    auto b = qc.find("weight_block_size");
    if (b != qc.end() && !b->is_null()) {
      if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() || !(*b)[1].is_number_integer() ||
          (*b)[0].get<int64_t>() < 1 || (*b)[1].get<int64_t>() < 1) {
        return invalid_argument(at + ".weight_block_size must be [rows, cols] of positive integers, got " +
                                b->dump());
      }
      q.fp8_block = std::make_pair((*b)[0].get<int64_t>(), (*b)[1].get<int64_t>());
    }
    auto fmt = qc.find("fmt");
    if (fmt != qc.end() && fmt->is_string() && fmt->get<std::string>() != "e4m3" &&
        fmt->get<std::string>() != "e5m2") {
      return unimplemented(at + ".fmt '" + fmt->get<std::string>() + "' is not supported (e4m3, e5m2)");
    }
    return q;
  }
  if (q.method_name == "tidal") {
    q.method = CheckpointQuantization::Method::kTidal;
    auto f = qc.find("format");
    if (f == qc.end() || !f->is_string()) return invalid_argument(at + " has no string 'format'");
    const auto fmt = quant_format_from_name(f->get<std::string>());
    if (!fmt) {
      return unimplemented(at + ".format '" + f->get<std::string>() + "' is not supported (" + kFormatList +
                           ")");
    }
    q.options.format = *fmt;
    const std::string g = qc.value("granularity", std::string("default"));
    if (g == "default") {
      q.options.granularity = Granularity::kDefault;
    } else if (g == "per_channel") {
      q.options.granularity = Granularity::kPerChannel;
    } else if (g == "per_tensor") {
      q.options.granularity = Granularity::kPerTensor;
    } else if (g == "block") {
      auto b = qc.find("weight_block_size");
      if (b == qc.end() || !b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() ||
          !(*b)[1].is_number_integer() || (*b)[0].get<int64_t>() < 1 || (*b)[1].get<int64_t>() < 1) {
        return invalid_argument(at + ": granularity 'block' needs weight_block_size [rows, cols]");
      }
      q.options.granularity = Granularity::kBlock;
      q.options.block_rows = (*b)[0].get<int64_t>();
      q.options.block_cols = (*b)[1].get<int64_t>();
    } else {
      return invalid_argument(at + ".granularity '" + g +
                              "' is not default, per_channel, per_tensor or block");
    }
    const std::string act = qc.value("activations", std::string("f32"));
    if (act == "int8") {
      const bool fp4 = q.options.format == QuantFormat::kNvFp4 || q.options.format == QuantFormat::kMxFp4;
      if (!fp4 && (q.options.format != QuantFormat::kInt8 || q.options.granularity != Granularity::kPerChannel)) {
        return invalid_argument(at + ": activations 'int8' needs format int8 with granularity per_channel, nvfp4 or mxfp4");
      }
      q.int8_activations = true;
    } else if (act != "f32") {
      return invalid_argument(at + ".activations '" + act + "' is not f32 or int8");
    }
    return q;
  }
  return unimplemented(at + ".quant_method '" + q.method_name + "' is not supported (supported: fp8, tidal)");
}

json tidal_quantization_config(const QuantOptions& o, const std::vector<std::string>& exclude,
                               bool int8_activations) {
  json qc = {{"quant_method", "tidal"}, {"format", quant_format_info(o.format).name}};
  switch (o.granularity) {
    case Granularity::kDefault:
      qc["granularity"] = "default";
      break;
    case Granularity::kPerChannel:
      qc["granularity"] = "per_channel";
      break;
    case Granularity::kPerTensor:
      qc["granularity"] = "per_tensor";
      break;
    case Granularity::kBlock:
      qc["granularity"] = "block";
      qc["weight_block_size"] = {o.block_rows, o.block_cols};
      break;
  }
  qc["modules_to_not_convert"] = exclude;
  qc["activations"] = int8_activations ? "int8" : "f32";
  return qc;
}

}  // namespace tidal
