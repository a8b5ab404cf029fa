// Small helpers shared by the CLI subcommands.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "tidal/core/status.h"
#include "tidal/engine/engine.h"

namespace tidal::cli {

// "1,2,3" -> {1, 2, 3}; errors name the bad element.
Expected<std::vector<int32_t>> parse_id_list(const std::string& text);

// Prints "tidal <cmd>: error: <status message>" and returns 1.
int fail(const Args& args, const Status& status);

// --threads N (0 or absent: all hardware threads).
int threads_flag(Args& args);

// "4GiB", "512MiB", "1.5G", "1000000" -> bytes.
Expected<uint64_t> parse_bytes(const std::string& text);

// --quantization FORMAT[:GRANULARITY] and --quantization-exclude LIST (model/quant_config.h) into
// *out. Returns false after printing a problem.
bool read_quantization_flags(Args& args, QuantizationOptions* out);
extern const char* const kQuantizationFlagsHelp;

// The engine flags shared by generate, bench-engine and serve:
//   --kv-cache-memory SIZE (default 1GiB)  --block-size N (16)  --max-num-batched-tokens N (512)
//   --max-num-seqs N (64)  --kv-dtype auto|f32|f16|bf16|fp8  --no-prefix-caching  --max-model-len N
//   --threads N  --quantization F  --quantization-exclude LIST
// Reads them into *config (model_dir from --model). Returns false after printing a problem.
bool read_engine_flags(Args& args, EngineConfig* config);
// --kv-dtype auto|f32|f16|bf16|fp8 alone (auto leaves *out unset). Returns false after printing a problem.
bool read_kv_dtype_flag(Args& args, std::optional<DType>* out);
extern const char* const kEngineFlagsHelp;

}  // namespace tidal::cli
