// The decoder forward pass (Llama / Qwen2 / Qwen3): reads as the math.
//
//   x = embed(tokens)                                   [T, n_embd]
//   per layer:
//     h = rms_norm(x) * attn_norm
//     q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)  [T, n_head*hd], [T, n_kv*hd] x2
//     q, k = rms_norm_per_head(q, k)                    (Qwen3)
//     q, k = rope(q, k, pos)
//     cache[pos] = k, v
//     x += attention(q, cache) Wo^T (+bo)               causal, GQA
//     h = rms_norm(x) * ffn_norm
//     x += (silu(h Wg^T) * (h Wu^T)) Wd^T
//   logits = rms_norm(x[selected rows]) * out_norm @ lm_head^T      [R, n_vocab]
//
// T is the total number of new tokens of all sequences in the batch: the matrix products run
// once over all of them; only attention looks at each sequence's own cache.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "tidal/model/model.h"

namespace tidal {

namespace {

// Per-token metadata for one forward call (NOTE: built once per call; layers only read it).
struct TokenMeta {
  KvCache* cache;
  int64_t pos;
};

void embed_rows(const ops::Weight& e, std::span<const int32_t> ids, float* out) {
  const int64_t H = e.n_in;
  for (size_t t = 0; t < ids.size(); ++t) {
    float* o = out + int64_t(t) * H;
    const int64_t row = ids[t];
    switch (e.dtype) {
      case DType::kF32:
        std::memcpy(o, static_cast<const float*>(e.data) + row * H, size_t(H) * sizeof(float));
        break;
      case DType::kF16: {
        const uint16_t* p = static_cast<const uint16_t*>(e.data) + row * H;
        for (int64_t i = 0; i < H; ++i) o[i] = f16_to_f32(p[i]);
        break;
      }
      case DType::kBF16: {
        const uint16_t* p = static_cast<const uint16_t*>(e.data) + row * H;
        for (int64_t i = 0; i < H; ++i) o[i] = bf16_to_f32(p[i]);
        break;
      }
      default: break;
    }
  }
}

void add_bias(float* y, const std::vector<float>& b, int64_t rows) {
  const int64_t n = int64_t(b.size());
  for (int64_t r = 0; r < rows; ++r) ops::add(y + r * n, b.data(), n);
}

// Causal attention of each new token's query over its sequence's cache (positions <= its own).
// out[t, h*hd..] = sum_p softmax_p(q_h . k_p / sqrt(hd)) v_p, with kv head = h / group.
void attention(ThreadPool& pool, const ModelConfig& c, int64_t layer, const std::vector<TokenMeta>& meta,
               const float* q, float* out, std::vector<float>& scores) {
  const int64_t T = int64_t(meta.size());
  const int64_t nh = c.n_heads, hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  int64_t max_ctx = 0;
  for (const auto& m : meta) max_ctx = std::max(max_ctx, m.pos + 1);
  scores.resize(size_t(pool.n_threads() * max_ctx));
  const KernelTable& kt = kernels();
  pool.run([&](int ith, int nth) {
    float* s = scores.data() + ith * max_ctx;
    int64_t begin, end;
    ThreadPool::split(T * nh, ith, nth, 1, &begin, &end);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t t = w / nh, h = w % nh, kvh = h / group;
      KvCache* cache = meta[size_t(t)].cache;
      const int64_t n_ctx = meta[size_t(t)].pos + 1;
      const float* qh = q + (t * nh + h) * hd;
      for (int64_t p = 0; p < n_ctx; ++p) s[p] = kt.dot(qh, cache->k(layer, p) + kvh * hd, hd) * scale;
      ops::softmax(s, n_ctx);
      float* o = out + (t * nh + h) * hd;
      std::memset(o, 0, size_t(hd) * sizeof(float));
      for (int64_t p = 0; p < n_ctx; ++p) kt.axpy(s[p], cache->v(layer, p) + kvh * hd, o, hd);
    }
  });
}

}  // namespace

Status Model::forward(std::span<const SequenceChunk> batch, std::vector<float>* logits) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const float eps = float(c.rms_norm_eps);

  // Validate the whole batch before touching any cache.
  std::vector<int32_t> ids;
  std::vector<TokenMeta> meta;
  std::vector<int64_t> out_rows;  // flattened token index of each logits row
  for (const SequenceChunk& ch : batch) {
    if (!ch.cache) return invalid_argument("forward: a sequence has no KV cache");
    if (ch.tokens.empty()) return invalid_argument("forward: a sequence has no tokens");
    const int64_t start = ch.cache->n_tokens();
    if (start + int64_t(ch.tokens.size()) > ch.cache->capacity()) {
      return resource_exhausted("forward: sequence needs " + std::to_string(start + ch.tokens.size()) +
                                " positions, its KV cache holds " + std::to_string(ch.cache->capacity()));
    }
    for (size_t i = 0; i < ch.tokens.size(); ++i) {
      const int32_t id = ch.tokens[i];
      if (id < 0 || id >= V) {
        return invalid_argument("forward: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(V) + ")");
      }
      if (ch.all_logits || i + 1 == ch.tokens.size()) out_rows.push_back(int64_t(ids.size()));
      ids.push_back(id);
      meta.push_back({ch.cache, start + int64_t(i)});
    }
  }
  const int64_t T = int64_t(ids.size());

  // Activations for this call. (NOTE: allocated per call; the engine's step loop keeps them.)
  std::vector<float> x(size_t(T * H)), h(size_t(T * H)), q(size_t(T * q_dim)), k(size_t(T * kv_dim)),
      v(size_t(T * kv_dim)), attn(size_t(T * q_dim)), proj(size_t(T * H)), gate(size_t(T * F)),
      up(size_t(T * F)), scores;

  embed_rows(weights_.embed, ids, x.data());
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = weights_.layers[size_t(l)];
    ops::rms_norm(x.data(), L.attn_norm.data(), eps, h.data(), T, H);
    ops::matmul(pool_, h.data(), T, L.wq, q.data());
    ops::matmul(pool_, h.data(), T, L.wk, k.data());
    ops::matmul(pool_, h.data(), T, L.wv, v.data());
    if (c.qkv_bias) {
      add_bias(q.data(), L.bq, T);
      add_bias(k.data(), L.bk, T);
      add_bias(v.data(), L.bv, T);
    }
    if (c.qk_norm) {
      ops::rms_norm(q.data(), L.q_norm.data(), eps, q.data(), T * c.n_heads, hd);
      ops::rms_norm(k.data(), L.k_norm.data(), eps, k.data(), T * c.n_kv_heads, hd);
    }
    for (int64_t t = 0; t < T; ++t) {
      const TokenMeta& m = meta[size_t(t)];
      ops::rope(q.data() + t * q_dim, int(c.n_heads), int(hd), m.pos, inv_freq_.data());
      ops::rope(k.data() + t * kv_dim, int(c.n_kv_heads), int(hd), m.pos, inv_freq_.data());
      std::memcpy(m.cache->k(l, m.pos), k.data() + t * kv_dim, size_t(kv_dim) * sizeof(float));
      std::memcpy(m.cache->v(l, m.pos), v.data() + t * kv_dim, size_t(kv_dim) * sizeof(float));
    }
    attention(pool_, c, l, meta, q.data(), attn.data(), scores);
    ops::matmul(pool_, attn.data(), T, L.wo, proj.data());
    if (c.o_bias) add_bias(proj.data(), L.bo, T);
    ops::add(x.data(), proj.data(), T * H);

    ops::rms_norm(x.data(), L.ffn_norm.data(), eps, h.data(), T, H);
    ops::matmul(pool_, h.data(), T, L.w_gate, gate.data());
    ops::matmul(pool_, h.data(), T, L.w_up, up.data());
    if (c.mlp_bias) {
      add_bias(gate.data(), L.b_gate, T);
      add_bias(up.data(), L.b_up, T);
    }
    ops::silu_mul(gate.data(), up.data(), gate.data(), T * F);
    ops::matmul(pool_, gate.data(), T, L.w_down, proj.data());
    if (c.mlp_bias) add_bias(proj.data(), L.b_down, T);
    ops::add(x.data(), proj.data(), T * H);
  }
  for (const SequenceChunk& ch : batch) ch.cache->advance(int64_t(ch.tokens.size()));

  const int64_t R = int64_t(out_rows.size());
  std::vector<float> sel(size_t(R * H));
  for (int64_t r = 0; r < R; ++r) {
    std::memcpy(sel.data() + r * H, x.data() + out_rows[size_t(r)] * H, size_t(H) * sizeof(float));
  }
  ops::rms_norm(sel.data(), weights_.out_norm.data(), eps, sel.data(), R, H);
  logits->resize(size_t(R * V));
  ops::matmul(pool_, sel.data(), R, weights_.lm_head, logits->data());
  return Status::ok();
}

}  // namespace tidal
