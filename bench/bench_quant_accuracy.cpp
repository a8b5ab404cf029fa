// Accuracy of quantized weights vs the model as stored (issue 6's accuracy report): for each format,
// next-token distributions over a token stream scored in chunks of --ctx tokens, compared with the
// unquantized model's: mean KL(P_ref || P_q), top-1 agreement, mean / max |delta log p(next)|, and
// perplexity of both on the stream.
//
//   bench_quant_accuracy --model DIR [--formats int8,fp8,fp8_e5m2,nvfp4,mxfp4] [--tokens 4096]
//                        [--ctx 512] [--text FILE] [--exclude lm_head,embed_tokens] [--threads N]
//                        [--ref-kv f32|bf16|f16] [--skip N] [--bos-chunks] [--token-ids FILE]
//
// --skip N: positions [0, N) of each chunk are not scored (llama-perplexity --kl-divergence scores
// the second half of each chunk: --skip ctx/2); --bos-chunks: each chunk starts with the BOS token
// (as llama-perplexity does), for comparisons on the same text and chunking. --token-ids FILE: score
// exactly these ids (decimal, separated by spaces, commas or newlines, e.g. the ids llama-perplexity
// evaluated, see bench/quant_accuracy_llama_cpp.sh); all of them, rounded down to whole chunks,
// unless --tokens asks for fewer.
//
// A format may name a KV cache type too: "FORMAT/kv=DTYPE" (e.g. "none/kv=fp8": weights as stored,
// FP8 KV cache; "int8/kv=fp8"). The reference uses --ref-kv (default f32), and so does every
// format without "/kv=".
//
// Tokens: --token-ids, else FILE encoded with the model's tokenizer and repeated as needed (--text),
// else fixed pseudo-random ids. Prints one markdown table row per format.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tidal/kernels/kernel_table.h"
#include "tidal/kernels/ops.h"
#include "tidal/model/model.h"
#include "tidal/tokenizer/token_ids.h"
#include "tidal/tokenizer/tokenizer.h"

namespace {

using namespace tidal;

struct Stats {
  double kl = 0, abs_dlp = 0, max_dlp = 0, nll_ref = 0, nll_q = 0;
  int64_t top1 = 0, n = 0;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

int64_t argmax(const float* x, int64_t n) {
  int64_t b = 0;
  for (int64_t i = 1; i < n; ++i) b = x[i] > x[b] ? i : b;
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, formats = "int8,fp8,fp8:block128,fp8_e5m2,nvfp4,mxfp4", text, exclude, ref_kv_name = "f32";
  std::string token_ids_file;
  int64_t n_tokens = 4096, ctx = 512, skip = 0;
  bool have_tokens = false;
  bool bos_chunks = false;
  int threads = 0;
  bool have_exclude = false;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--bos-chunks") {
      bos_chunks = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "flag %s needs a value\n", k.c_str());
      return 2;
    }
    const std::string v = argv[i + 1];
    if (k == "--model")
      model_dir = v;
    else if (k == "--formats")
      formats = v;
    else if (k == "--tokens")
      n_tokens = std::atoll(v.c_str()), have_tokens = true;
    else if (k == "--ctx")
      ctx = std::atoll(v.c_str());
    else if (k == "--text")
      text = v;
    else if (k == "--threads")
      threads = std::atoi(v.c_str());
    else if (k == "--exclude")
      exclude = v, have_exclude = true;
    else if (k == "--ref-kv")
      ref_kv_name = v;
    else if (k == "--token-ids")
      token_ids_file = v;
    else if (k == "--skip")
      skip = std::atoll(v.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (model_dir.empty() || ctx < 2 || n_tokens < ctx || skip < 0 || skip >= ctx - 1) {
    std::fprintf(stderr,
                 "usage: bench_quant_accuracy --model DIR [--formats L] [--tokens N] [--ctx C] "
                 "[--text FILE | --token-ids FILE]\n");
    return 2;
  }
  if (!text.empty() && !token_ids_file.empty()) {
    std::fprintf(stderr, "give --text or --token-ids, not both\n");
    return 2;
  }
  auto ref = Model::load(model_dir, {.n_threads = threads, .quantization = {}});
  if (!ref) {
    std::fprintf(stderr, "%s\n", ref.status().to_string().c_str());
    return 1;
  }
  const ModelConfig& c = (*ref)->config();
  const int64_t V = c.vocab_size;

  // The token stream.
  std::vector<int32_t> ids;
  if (!token_ids_file.empty()) {
    auto read = read_token_ids(token_ids_file, V);
    if (!read) {
      std::fprintf(stderr, "--token-ids: %s\n", read.status().message().c_str());
      return 2;
    }
    ids = std::move(read).value();
    if (!have_tokens) n_tokens = int64_t(ids.size());
    if (int64_t(ids.size()) < std::max(n_tokens, ctx)) {
      std::fprintf(stderr, "--token-ids: %s has %zu ids, fewer than %s %lld\n", token_ids_file.c_str(), ids.size(),
                   n_tokens > ctx ? "the --tokens asked for," : "one chunk (--ctx),",
                   (long long)std::max(n_tokens, ctx));
      return 2;
    }
  }
  n_tokens = n_tokens / ctx * ctx;
  if (!token_ids_file.empty()) {
    ids.resize(size_t(n_tokens));
  } else if (!text.empty()) {
    auto tok = Tokenizer::load(model_dir);
    std::ifstream in(text);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!tok || ss.str().empty()) {
      std::fprintf(stderr, "--text needs a readable file and a tokenizer.json Tidal can load: %s\n",
                   tok ? "empty file" : tok.status().to_string().c_str());
      return 1;
    }
    const auto enc = tok->encode(ss.str(), false);
    while (int64_t(ids.size()) < n_tokens) ids.insert(ids.end(), enc.begin(), enc.end());
    ids.resize(size_t(n_tokens));
  } else {
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < n_tokens; ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      ids.push_back(int32_t((s >> 33) % uint64_t(V)));
    }
  }

  auto kv_dtype_of = [](const std::string& name) -> std::optional<DType> {
    if (name == "fp8" || name == "fp8_e4m3") return DType::kF8E4M3;
    auto dt = dtype_from_name(name);
    if (dt && PagedKvStorage::supports(*dt)) return dt;
    return std::nullopt;
  };
  const std::optional<DType> ref_kv = kv_dtype_of(ref_kv_name);
  if (!ref_kv) {
    std::fprintf(stderr, "--ref-kv: unknown KV dtype '%s'\n", ref_kv_name.c_str());
    return 2;
  }
  std::vector<std::string> names = split(formats);
  std::vector<std::unique_ptr<Model>> owned;
  std::vector<Model*> models;
  std::vector<DType> kv_dtypes;
  for (const std::string& name : names) {
    std::string f = name;
    DType kv = *ref_kv;
    if (const size_t at = f.find("/kv="); at != std::string::npos) {
      const auto dt = kv_dtype_of(f.substr(at + 4));
      if (!dt) {
        std::fprintf(stderr, "%s: unknown KV dtype\n", name.c_str());
        return 2;
      }
      kv = *dt;
      f = f.substr(0, at);
    }
    kv_dtypes.push_back(kv);
    if (f == "none") {  // weights as stored
      models.push_back(ref->get());
      continue;
    }
    auto q = parse_quantization_flags(f, have_exclude ? std::optional<std::string>(exclude) : std::nullopt);
    if (!q) {
      std::fprintf(stderr, "%s\n", q.status().to_string().c_str());
      return 2;
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto m = Model::load(model_dir, {.n_threads = threads, .quantization = *q});
    if (!m) {
      std::fprintf(stderr, "%s\n", m.status().to_string().c_str());
      return 1;
    }
    std::fprintf(stderr, "loaded %s in %.2f s: %s, %.1f MiB of matrices per token\n", f.c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                 (*m)->quantization().c_str(), double((*m)->matrix_bytes_per_token()) / (1 << 20));
    owned.push_back(std::move(m).value());
    models.push_back(owned.back().get());
  }

  std::vector<Stats> stats(models.size());
  std::vector<float> lr, lq, pr(static_cast<size_t>(V)), pq(static_cast<size_t>(V));
  if (bos_chunks && !c.bos_token_id) {
    std::fprintf(stderr, "--bos-chunks: the model has no bos_token_id\n");
    return 2;
  }
  for (int64_t off = 0; off < n_tokens; off += ctx) {
    if (bos_chunks) ids[size_t(off)] = *c.bos_token_id;
    const std::span<const int32_t> chunk(ids.data() + off, size_t(ctx));
    KvCache kv(c, ctx, *ref_kv);
    if (!(*ref)->forward(std::vector<SequenceChunk>{{kv.slots(), chunk, true}}, &lr).is_ok()) return 1;
    for (size_t mi = 0; mi < models.size(); ++mi) {
      KvCache kq(c, ctx, kv_dtypes[mi]);
      if (!models[mi]->forward(std::vector<SequenceChunk>{{kq.slots(), chunk, true}}, &lq).is_ok()) return 1;
      Stats& s = stats[mi];
      for (int64_t i = skip; i + 1 < ctx; ++i) {
        ops::log_softmax(lr.data() + i * V, pr.data(), V);
        ops::log_softmax(lq.data() + i * V, pq.data(), V);
        double kl = 0;
        for (int64_t v = 0; v < V; ++v)
          kl += std::exp(double(pr[size_t(v)])) * (double(pr[size_t(v)]) - double(pq[size_t(v)]));
        const int32_t next = chunk[size_t(i + 1)];
        const double d = std::fabs(double(pr[size_t(next)]) - double(pq[size_t(next)]));
        s.kl += kl;
        s.abs_dlp += d;
        s.max_dlp = std::max(s.max_dlp, d);
        s.nll_ref -= pr[size_t(next)];
        s.nll_q -= pq[size_t(next)];
        s.top1 += argmax(pr.data(), V) == argmax(pq.data(), V);
        s.n += 1;
      }
    }
    std::fprintf(stderr, "\r%lld / %lld tokens", (long long)(off + ctx), (long long)n_tokens);
  }
  std::fprintf(stderr, "\n");
  std::printf("model %s (%s, %s weights), %lld tokens in chunks of %lld (first %lld of each not scored%s), "
              "reference KV %s, kernels %s\n\n",
              model_dir.c_str(), c.architecture.c_str(), dtype_name((*ref)->weight_dtype()), (long long)n_tokens,
              (long long)ctx, (long long)skip, bos_chunks ? ", BOS first" : "", dtype_name(*ref_kv), kernels().name);
  std::printf(
      "| format | MiB/token | mean KL | top-1 agree | mean abs dlogp | max abs dlogp | PPL (ref %.3f) |\n",
      std::exp(stats.empty() ? 0 : stats[0].nll_ref / double(stats[0].n)));
  std::printf("|---|---|---|---|---|---|---|\n");
  for (size_t mi = 0; mi < models.size(); ++mi) {
    const Stats& s = stats[mi];
    const double n = double(s.n);
    std::printf("| %s | %.1f | %.2e | %.4f | %.2e | %.3f | %.3f |\n", names[mi].c_str(),
                double(models[mi]->matrix_bytes_per_token()) / (1 << 20), s.kl / n, double(s.top1) / n,
                s.abs_dlp / n, s.max_dlp, std::exp(s.nll_q / n));
  }
  return 0;
}
