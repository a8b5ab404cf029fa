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
// Every product goes through ops::linear / ops::linear_many, which take dense and quantized
// weights alike (kernels/quant_ops.h).
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
  const SequenceChunk* chunk;
  int64_t pos;
};

void embed_rows(const ops::LinearWeight& w, std::span<const int32_t> ids, float* out) {
  const int64_t H = w.n_in();
  const ops::Weight& e = w.dense;
  for (size_t t = 0; t < ids.size(); ++t) {
    float* o = out + int64_t(t) * H;
    const int64_t row = ids[t];
    if (w.quant) {
      w.quant->dequantize_row(row, o);  // the reference decoding: exact, O(n_embd) per token
      continue;
    }
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

// Causal attention of each new token's queries over its sequence's paged K/V (positions <= its
// own):  s[p] = q . k_p / sqrt(hd);  out = sum_p softmax_p(s) v_p.
// Work items: a decode token (a tile of one) is one item covering all its heads when a step has
// enough of them (else one item per kv head, so a lone sequence still uses every thread); a
// prefill tile of up to kQueryTile consecutive tokens of one chunk is one item per kv head. A
// whole-token item walks each KV block once for all heads (a block's K rows, then its V rows, are contiguous: row =
// n_kv_heads x head_dim), where one item per head read a head_dim slice of every row with a stride
// of the whole row: serving's decode steps read the whole KV cache from DRAM, and the strided walk
// drew it at a fraction of the bandwidth. Scores of every query row of a tile against a KV block
// come from one matmul call per query head of the group (K rows are the "weights"), so K is read
// once per tile instead of once per token; rows past a token's own position are computed but
// never used. P x V accumulates block by block with axpy_rows, the output row staying in
// registers. Both kernels promise results that depend only on the row's own inputs
// (kernel_table.h), and each (token, head) sees the same calls in the same order whichever item
// shape it is in, so a token's output is bit-identical whatever tile, chunk or batch it is
// computed in.
// FP8 KV (F8_E4M3 codes + one F32 scale per token and head, kv_cache.h): the kernels read the
// codes unscaled; each score is multiplied by its K row's scale after the product, and each
// probability by its V row's scale before P x V - both per element, so invariance holds as well.
constexpr int64_t kQueryTile = 16;

void attention(ThreadPool& pool, const ModelConfig& c, int64_t layer, const std::vector<TokenMeta>& meta,
               const float* q, float* out, std::vector<float>& scores) {
  const int64_t T = int64_t(meta.size());
  const int64_t nh = c.n_heads, nkv = c.n_kv_heads, hd = c.head_dim, group = nh / nkv;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  int64_t max_ctx = 0;
  for (const auto& m : meta) max_ctx = std::max(max_ctx, m.pos + 1);
  struct Item {
    int64_t t0, n;          // the tile's tokens
    int64_t kvh0, kvh1;     // its kv heads [kvh0, kvh1): all of a whole decode token, else one
  };
  std::vector<Item> tiles;  // (t0, n) of each tile
  int64_t n_decode = 0;
  for (int64_t t = 0; t < T;) {
    int64_t e = t + 1;
    while (e < T && e - t < kQueryTile && meta[size_t(e)].chunk == meta[size_t(t)].chunk) ++e;
    tiles.push_back({t, e - t, 0, nkv});
    n_decode += e - t == 1;
    t = e;
  }
  // Whole-token decode items only when there are enough of them to share out (a lone decode
  // sequence's heads are still split over the threads).
  const bool whole_tokens = n_decode >= 4 * int64_t(pool.n_threads());
  std::vector<Item> items;
  for (const Item& tile : tiles) {
    if (tile.n == 1 && whole_tokens) {
      items.push_back(tile);
    } else {
      for (int64_t h = 0; h < nkv; ++h) items.push_back({tile.t0, tile.n, h, h + 1});
    }
  }
  // Scores of token ti, head g of kv head h: s + (h - kvh0 + ti) * ld + g * max_ctx (a decode item
  // has one token and up to nkv heads, a prefill item up to kQueryTile tokens and one head).
  const int64_t ld = group * max_ctx;
  const size_t per_thread = size_t(std::max(kQueryTile, nkv) * ld);
  if (scores.size() < size_t(pool.n_threads()) * per_thread) scores.resize(size_t(pool.n_threads()) * per_thread);
  const KernelTable& kt = kernels();
  pool.run([&](int ith, int nth) {
    float* s = scores.data() + size_t(ith) * per_thread;
    int64_t begin, end;
    ThreadPool::split(int64_t(items.size()), ith, nth, 1, &begin, &end);
    for (int64_t w = begin; w < end; ++w) {
      const Item it = items[size_t(w)];
      const KvSlots& kv = meta[size_t(it.t0)].chunk->kv;
      PagedKvStorage& st = *kv.storage;
      const int64_t bs = st.block_size(), row = st.row_size();
      const size_t esz = dtype_size(st.dtype());
      const MatmulFn qk = kt.matmul_for(st.dtype());
      const bool fp8 = st.dtype() == DType::kF8E4M3;
      // Block b of the sequence in this layer: its K (or V) rows and, for FP8, their scales.
      struct BlockRows {
        const uint8_t* rows;
        const float* scales;
      };
      auto block_rows = [&](int64_t b, bool v_side) {
        const int32_t id = kv.block_table[size_t(b)];
        return BlockRows{static_cast<const uint8_t*>(v_side ? st.v(layer, id) : st.k(layer, id)),
                         !fp8 ? nullptr : v_side ? st.v_scale(layer, id) : st.k_scale(layer, id)};
      };
      int64_t tile_ctx = 0;
      for (int64_t ti = 0; ti < it.n; ++ti) tile_ctx = std::max(tile_ctx, meta[size_t(it.t0 + ti)].pos + 1);
      for (int64_t b = 0; b * bs < tile_ctx; ++b) {
        const int64_t n_valid = std::min(bs, tile_ctx - b * bs);
        const BlockRows kb_rows = block_rows(b, false);
        for (int64_t kvh = it.kvh0; kvh < it.kvh1; ++kvh) {
          const uint8_t* kb = kb_rows.rows + size_t(kvh * hd) * esz;
          float* sh = s + (kvh - it.kvh0) * ld;
          if (it.n == 1) {
            // One token (decode): its `group` query heads are consecutive rows of q, so one call
            // with m = group reads (and widens) the K block once for all of them.
            qk(q + (it.t0 * nh + kvh * group) * hd, hd, kb, row, sh + b * bs, max_ctx, group, hd, 0, n_valid);
          } else {
            for (int64_t g = 0; g < group; ++g) {
              const float* qg = q + (it.t0 * nh + kvh * group + g) * hd;  // rows: the tile's tokens
              qk(qg, nh * hd, kb, row, sh + g * max_ctx + b * bs, ld, it.n, hd, 0, n_valid);
            }
          }
          if (fp8) {
            for (int64_t ti = 0; ti < it.n; ++ti) {
              for (int64_t g = 0; g < group; ++g) {
                float* sb = sh + ti * ld + g * max_ctx + b * bs;
                for (int64_t j = 0; j < n_valid; ++j) sb[j] *= kb_rows.scales[kvh + j * nkv];
              }
            }
          }
        }
      }
      for (int64_t ti = 0; ti < it.n; ++ti) {
        const int64_t t = it.t0 + ti, n_ctx = meta[size_t(t)].pos + 1;
        for (int64_t kvh = it.kvh0; kvh < it.kvh1; ++kvh) {
          for (int64_t g = 0; g < group; ++g) {
            float* sg = s + (kvh - it.kvh0 + ti) * ld + g * max_ctx;
            for (int64_t p = 0; p < n_ctx; ++p) sg[p] *= scale;
            ops::softmax(sg, n_ctx);
            std::memset(out + (t * nh + kvh * group + g) * hd, 0, size_t(hd) * sizeof(float));
          }
        }
        for (int64_t b = 0; b * bs < n_ctx; ++b) {
          const int64_t nb = std::min(bs, n_ctx - b * bs);
          const BlockRows vb_rows = block_rows(b, true);
          for (int64_t kvh = it.kvh0; kvh < it.kvh1; ++kvh) {
            const void* vp = vb_rows.rows + size_t(kvh * hd) * esz;
            for (int64_t g = 0; g < group; ++g) {
              float* sg = s + (kvh - it.kvh0 + ti) * ld + g * max_ctx;
              if (fp8) {
                for (int64_t j = 0; j < nb; ++j) sg[b * bs + j] *= vb_rows.scales[kvh + j * nkv];
              }
              kt.axpy_rows(st.dtype(), sg + b * bs, vp, row, nb, out + (t * nh + kvh * group + g) * hd, hd);
            }
          }
        }
      }
    }
  });
}

template <class T>
T* grow(std::vector<T>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
  return v.data();
}

}  // namespace

Status Model::forward(std::span<const SequenceChunk> batch, std::vector<float>* logits) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, hd = c.head_dim;
  const int64_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const float eps = float(c.rms_norm_eps);

  // Validate the whole batch before touching any storage.
  std::vector<int32_t> ids;
  std::vector<TokenMeta> meta;
  std::vector<int64_t> out_rows;  // flattened token index of each logits row
  for (const SequenceChunk& ch : batch) {
    const KvSlots& kv = ch.kv;
    if (!kv.storage) return invalid_argument("forward: a sequence has no KV storage");
    if (ch.tokens.empty()) return invalid_argument("forward: a sequence has no tokens");
    const int64_t end_pos = kv.n_past + int64_t(ch.tokens.size());
    if (end_pos > int64_t(kv.block_table.size()) * kv.storage->block_size()) {
      return resource_exhausted("forward: sequence needs " + std::to_string(end_pos) + " positions, its blocks hold " +
                                std::to_string(int64_t(kv.block_table.size()) * kv.storage->block_size()));
    }
    for (int32_t b : kv.block_table) {
      if (b < 0 || b >= kv.storage->n_blocks()) return invalid_argument("forward: block id " + std::to_string(b) + " out of range");
    }
    if (kv.storage->row_size() != c.n_kv_heads * hd) return invalid_argument("forward: KV storage shape does not match the model");
    if (!PagedKvStorage::supports(kv.storage->dtype())) {
      return invalid_argument(std::string("forward: KV storage dtype ") + dtype_name(kv.storage->dtype()) +
                              " is not supported (F32, F16, BF16 or F8_E4M3)");
    }
    for (size_t i = 0; i < ch.tokens.size(); ++i) {
      const int32_t id = ch.tokens[i];
      if (id < 0 || id >= V) {
        return invalid_argument("forward: token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                std::to_string(V) + ")");
      }
      if (ch.all_logits || i + 1 == ch.tokens.size()) out_rows.push_back(int64_t(ids.size()));
      ids.push_back(id);
      meta.push_back({&ch, kv.n_past + int64_t(i)});
    }
  }
  const int64_t T = int64_t(ids.size());

  float* x = grow(x_, T * H);
  float* h = grow(h_, T * H);
  float* q = grow(q_, T * q_dim);
  float* k = grow(k_, T * kv_dim);
  float* v = grow(v_, T * kv_dim);
  float* attn = grow(attn_, T * q_dim);
  float* proj = grow(proj_, T * H);
  float* gate = grow(gate_, T * F);
  float* up = grow(up_, T * F);

  embed_rows(weights_.embed, ids, x);
  // RoPE angles once per token for every layer: [T, head_dim] (cos, then sin).
  float* cos_sin = grow(rope_cs_, T * hd);
  for (int64_t t = 0; t < T; ++t) ops::rope_angles(meta[size_t(t)].pos, int(hd), inv_freq_.data(), cos_sin + t * hd);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = weights_.layers[size_t(l)];
    if (l == 0) {
      ops::rms_norm(pool_, x, L.attn_norm.data(), eps, h, T, H);
    } else {
      ops::add_rms_norm(pool_, x, proj, L.attn_norm.data(), eps, h, T, H);  // the last layer's MLP residual
    }
    ops::linear_many(pool_, h, T, {{&L.wq, q}, {&L.wk, k}, {&L.wv, v}}, activations_);
    if (c.qkv_bias) {
      add_bias(q, L.bq, T);
      add_bias(k, L.bk, T);
      add_bias(v, L.bv, T);
    }
    if (c.qk_norm) {
      ops::rms_norm(pool_, q, L.q_norm.data(), eps, q, T * c.n_heads, hd);
      ops::rms_norm(pool_, k, L.k_norm.data(), eps, k, T * c.n_kv_heads, hd);
    }
    // RoPE, then K and V into each token's cache slot (distinct slots: tokens are independent).
    const auto rope_and_store = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const TokenMeta& m = meta[size_t(t)];
        ops::rope_rotate(q + t * q_dim, int(c.n_heads), int(hd), cos_sin + t * hd);
        ops::rope_rotate(k + t * kv_dim, int(c.n_kv_heads), int(hd), cos_sin + t * hd);
        const KvSlots& kv = m.chunk->kv;
        const int64_t bs = kv.storage->block_size();
        kv.storage->write_token(l, kv.block_table[size_t(m.pos / bs)], m.pos % bs, k + t * kv_dim, v + t * kv_dim);
      }
    };
    pool_.run_split(T, 1, ops::kParallelRows, rope_and_store);
    attention(pool_, c, l, meta, q, attn, scores_);
    ops::linear(pool_, attn, T, L.wo, proj, activations_);
    if (c.o_bias) add_bias(proj, L.bo, T);
    ops::add_rms_norm(pool_, x, proj, L.ffn_norm.data(), eps, h, T, H);  // attention residual
    if (c.mlp_bias) {  // the biases go in before the activation
      ops::linear_many(pool_, h, T, {{&L.w_gate, gate}, {&L.w_up, up}}, activations_);
      add_bias(gate, L.b_gate, T);
      add_bias(up, L.b_up, T);
      ops::silu_mul(pool_, gate, up, gate, T * F);
    } else {
      ops::linear_swiglu(pool_, h, T, L.w_gate, L.w_up, gate, up, gate, activations_);
    }
    ops::linear(pool_, gate, T, L.w_down, proj, activations_);
    if (c.mlp_bias) add_bias(proj, L.b_down, T);
    // The MLP residual (x += proj) is added by the next layer's add_rms_norm, or here after the last.
  }
  if (c.n_layers > 0) ops::add(x, proj, T * H);
  const int64_t R = int64_t(out_rows.size());
  float* sel = grow(sel_, R * H);
  for (int64_t r = 0; r < R; ++r) {
    std::memcpy(sel + r * H, x + out_rows[size_t(r)] * H, size_t(H) * sizeof(float));
  }
  ops::rms_norm(pool_, sel, weights_.out_norm.data(), eps, sel, R, H);
  logits->resize(size_t(R * V));
  ops::linear(pool_, sel, R, weights_.lm_head, logits->data(), activations_);
  return Status::ok();
}

}  // namespace tidal
