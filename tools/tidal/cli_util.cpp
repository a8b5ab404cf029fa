#include "cli_util.h"

#include <cerrno>
#include <cstdlib>

namespace tidal::cli {

Expected<std::vector<int32_t>> parse_id_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    char* end = nullptr;
    errno = 0;
    long long v = item.empty() ? 0 : std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || v < 0 || v > INT32_MAX) {
      return invalid_argument("token id list: '" + item + "' is not a non-negative 32-bit integer");
    }
    ids.push_back(int32_t(v));
    start = comma + 1;
  }
  return ids;
}

int fail(const Args& args, const Status& status) {
  args.error(status.message());
  return 1;
}

Expected<uint64_t> parse_bytes(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  std::string unit(end ? end : "");
  double mul = 1;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "K" || unit == "KB" || unit == "KiB") mul = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MiB") mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GiB") mul = 1024.0 * 1024 * 1024;
  else return invalid_argument("size '" + text + "': unknown unit '" + unit + "' (use B, KiB, MiB or GiB)");
  if (text.empty() || end == text.c_str() || !(v > 0) || errno == ERANGE) {
    return invalid_argument("size '" + text + "' is not a positive number of bytes");
  }
  return uint64_t(v * mul);
}

const char* const kEngineFlagsHelp = R"(engine flags:
  --kv-cache-memory SIZE      KV cache budget, e.g. 512MiB, 4GiB (default 1GiB)
  --block-size N              tokens per KV block (default 16)
  --max-num-batched-tokens N  token budget per engine step (default 512)
  --max-num-seqs N            sequences running at once (default 64)
  --kv-dtype auto|f32|f16|bf16|fp8  KV cache element type (default auto: F32 for F32 weights, else the
                              weights' 16-bit type); fp8 = E4M3 codes with one F32 scale per token and head
  --no-prefix-caching         do not reuse cached prompt prefixes
  --max-model-len N           context limit (default: the model's max_position_embeddings)
  --threads N                 compute threads (default: all cores)
  --quantization F            quantize weight matrices on load: int8, fp8 (= fp8_e4m3), fp8_e5m2,
                              nvfp4, mxfp4; 8-bit formats take :channel (default), :tensor or
                              :block128 / :block<R>x<C> (e.g. fp8:block128); w8a8 = int8 weights
                              and int8 activations (per token) with int8 dot products; nvfp4:a8 /
                              mxfp4:a8 = FP4 weights with int8 activations (W4A8)
  --quantization-exclude L    comma list of tensor-name substrings kept as stored
                              (default lm_head,embed_tokens; "none" quantizes every matrix)
)";

const char* const kQuantizationFlagsHelp = R"(quantization flags:
  --quantization F            quantize weight matrices on load: int8, fp8 (= fp8_e4m3), fp8_e5m2,
                              nvfp4, mxfp4; 8-bit formats take :channel (default), :tensor or
                              :block128 / :block<R>x<C> (e.g. fp8:block128); w8a8 = int8 weights
                              and int8 activations (per token) with int8 dot products; nvfp4:a8 /
                              mxfp4:a8 = FP4 weights with int8 activations (W4A8)
  --quantization-exclude L    comma list of tensor-name substrings kept as stored
                              (default lm_head,embed_tokens; "none" quantizes every matrix)
)";

bool read_quantization_flags(Args& args, QuantizationOptions* out) {
  const std::string format = args.get_or("quantization", "");
  const std::optional<std::string> exclude = args.get("quantization-exclude");
  auto q = parse_quantization_flags(format, exclude);
  if (!q) {
    args.error(q.status().message());
    return false;
  }
  *out = std::move(q).value();
  return true;
}

bool read_engine_flags(Args& args, EngineConfig* c) {
  c->model_dir = args.get_or("model", "");
  c->n_threads = threads_flag(args);
  if (auto kv = args.get("kv-cache-memory")) {
    auto bytes = parse_bytes(*kv);
    if (!bytes) {
      args.error("--kv-cache-memory: " + bytes.status().message());
      return false;
    }
    c->kv_cache_bytes = *bytes;
  }
  c->block_size = int32_t(args.get_int("block-size", c->block_size));
  c->max_num_batched_tokens = args.get_int("max-num-batched-tokens", c->max_num_batched_tokens);
  c->max_num_seqs = int32_t(args.get_int("max-num-seqs", c->max_num_seqs));
  c->max_model_len = args.get_int("max-model-len", 0);
  c->prefix_caching = !args.has("no-prefix-caching");
  if (!read_quantization_flags(args, &c->quantization)) return false;
  return read_kv_dtype_flag(args, &c->kv_dtype);
}

bool read_kv_dtype_flag(Args& args, std::optional<DType>* out) {
  const std::string kv_dtype = args.get_or("kv-dtype", "auto");
  if (kv_dtype == "auto") return true;
  auto dt = kv_dtype == "fp8" || kv_dtype == "fp8_e4m3" ? std::optional<DType>(DType::kF8E4M3) : dtype_from_name(kv_dtype);
  if (!dt || !PagedKvStorage::supports(*dt)) {
    args.error("--kv-dtype must be auto, f32, f16, bf16 or fp8, got '" + kv_dtype + "'");
    return false;
  }
  *out = *dt;
  return true;
}

int threads_flag(Args& args) {
  long long n = args.get_int("threads", 0);
  return n < 0 ? 0 : int(n);
}

}  // namespace tidal::cli
