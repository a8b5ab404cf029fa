// tidal model init --arch qwen3 --layers 2 --hidden 256 ... OUT: write a random-weight model.
#include <cstdio>

#include "cli_util.h"
#include "command.h"
#include "tidal/model/model_init.h"

namespace {

constexpr const char* kHelp = R"(usage: tidal model init [flags] OUT_DIR
Writes a random-weight model as a Hugging Face folder (config.json, safetensors, tokenizer.json).
  --arch llama|qwen2|qwen3   architecture family (default qwen3)
  --layers N                 decoder layers (default 2)
  --hidden N                 hidden size (default 256)
  --intermediate N           MLP size (default 4 x hidden / 2 rounded: 2 x hidden)
  --heads N                  attention heads (default 4)
  --kv-heads N               key/value heads (default = heads / 2, at least 1)
  --head-dim N               per-head size (default hidden / heads)
  --vocab N                  vocabulary size (default 4096, at least 259: a byte-level vocabulary)
  --tie                      tie the LM head to the embedding
  --dtype f32|f16|bf16       stored dtype (default bf16)
  --rope-theta X             RoPE base (default 10000)
  --rope-scaling llama3      Llama-3.1-style RoPE frequency scaling
  --shards N                 split weights over N safetensors files with an index (default 1)
  --seed N                   weights seed (default 0)
  --force                    overwrite an existing model in OUT_DIR
)";

int run_model_init(tidal::cli::Args& args) {
  if (args.has("help")) {
    std::printf("%s", kHelp);
    return 0;
  }
  tidal::RandomModelSpec s;
  s.family = args.get_or("arch", "qwen3");
  s.n_layers = args.get_int("layers", 2);
  s.hidden = args.get_int("hidden", 256);
  s.intermediate = args.get_int("intermediate", 2 * s.hidden);
  s.n_heads = args.get_int("heads", 4);
  s.n_kv_heads = args.get_int("kv-heads", s.n_heads / 2 > 0 ? s.n_heads / 2 : 1);
  s.head_dim = args.get_int("head-dim", 0);
  s.vocab = args.get_int("vocab", 4096);
  s.tie_embeddings = args.has("tie");
  s.rope_theta = args.get_double("rope-theta", 10000.0);
  s.n_shards = int(args.get_int("shards", 1));
  s.seed = uint64_t(args.get_int("seed", 0));
  const bool force = args.has("force");
  const std::string dtype = args.get_or("dtype", "bf16");
  const std::string scaling = args.get_or("rope-scaling", "");
  if (!args.finish(1)) return 2;
  if (args.positionals().size() != 1) {
    args.error("expected exactly one output directory (see --help)");
    return 2;
  }
  auto dt = tidal::dtype_from_name(dtype);
  if (!dt) {
    args.error("--dtype must be f32, f16 or bf16, got '" + dtype + "'");
    return 2;
  }
  s.dtype = *dt;
  if (!scaling.empty() && scaling != "llama3") {
    args.error("--rope-scaling supports only llama3, got '" + scaling + "'");
    return 2;
  }
  s.llama3_rope_scaling = scaling == "llama3";
  const std::string out = args.positionals()[0];
  tidal::Status st = tidal::write_random_model(s, out, force);
  if (!st.is_ok()) return tidal::cli::fail(args, st);
  std::fprintf(stderr, "tidal model init: wrote %s model (%lld layers, hidden %lld, vocab %lld, %s) to %s\n",
               s.family.c_str(), (long long)s.n_layers, (long long)s.hidden, (long long)s.vocab,
               dtype.c_str(), out.c_str());
  return 0;
}

}  // namespace

TIDAL_COMMAND("model init", "write a random-weight model folder (for tests and benchmarks)", run_model_init);
