// tidal quantize --model DIR --format F [--quantization-exclude L] OUT: writes a quantized
// checkpoint (the "tidal" safetensors layout, docs/quantization.md) that loads back bit-identically
// to quantizing DIR on load with the same options.
#include <cstdio>
#include <filesystem>

#include "cli_util.h"
#include "command.h"
#include "tidal/model/model.h"

namespace {

constexpr const char* kHelp =
    R"(usage: tidal quantize --model DIR --format F [--quantization-exclude L] [--threads N] OUT
Quantizes DIR's weight matrices (all but the excluded ones) and writes a model folder OUT:
model.safetensors (codes X.weight, scales X.weight_scale, nvfp4 global X.weight_scale_2; other
tensors as stored), config.json with a quantization_config {"quant_method": "tidal", ...}, and
DIR's other files (tokenizer, generation config). `tidal score --model OUT` then gives the same
logits, bit for bit, as `tidal score --model DIR --quantization F`.
  --format F                  int8, w8a8, fp8 (= fp8_e4m3), fp8_e5m2, nvfp4, mxfp4; 8-bit formats take
                              :channel (default), :tensor or :block<R>x<C> (e.g. fp8:block128)
  --quantization-exclude L    comma list of tensor-name substrings kept as stored
                              (default lm_head,embed_tokens; "none" quantizes every matrix)
)";

int run_quantize(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  const auto model_dir = args.get("model");
  const auto format = args.get("format");
  const auto exclude = args.get("quantization-exclude");
  const int threads = tidal::cli::threads_flag(args);
  if (!args.finish(1)) return 2;
  if (!model_dir || !format || args.positionals().size() != 1) {
    args.error("--model, --format and the output folder are required (see --help)");
    return 2;
  }
  const std::string out = args.positionals()[0];
  auto q = tidal::parse_quantization_flags(*format, exclude);
  if (!q) return tidal::cli::fail(args, q.status());
  if (!q->quantize) {
    args.error("--format must name a format (int8, fp8, fp8_e5m2, nvfp4, mxfp4)");
    return 2;
  }
  auto model = tidal::Model::load(*model_dir, {.n_threads = threads, .quantization = *q});
  if (!model) return tidal::cli::fail(args, model.status());
  const tidal::Model& m = **model;
  tidal::Status st = tidal::write_quantized_checkpoint(*model_dir, m.store(), m.quantized_matrices(),
                                                       *q->quantize, q->exclude, q->int8_activations, out);
  if (!st.is_ok()) return tidal::cli::fail(args, st);
  std::error_code ec;
  const auto in_bytes = m.store().total_bytes();
  const auto out_bytes = std::filesystem::file_size(std::filesystem::path(out) / "model.safetensors", ec);
  std::printf("%s: %s, %zu matrices quantized; %.1f MiB -> %.1f MiB\n", out.c_str(), m.quantization().c_str(),
              m.quantized_matrices().size(), double(in_bytes) / (1 << 20), double(out_bytes) / (1 << 20));
  return 0;
}

}  // namespace

TIDAL_COMMAND("quantize", "write a quantized checkpoint (int8, fp8, nvfp4, mxfp4)", run_quantize);
