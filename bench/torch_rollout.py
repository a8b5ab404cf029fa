#!/usr/bin/python3
"""Rollout generation in plain PyTorch (the anchor for `tidal bench-engine` at RL batch sizes).

    /usr/bin/python3 bench/torch_rollout.py MODEL_DIR [--batch 256] [--prompt-len 24] [--gen 16] [--threads 2]

What a PyTorch RL prototype does: a batch of prompts, a KV cache per layer, one forward pass per
generated token over the whole batch, sampling at temperature 1 from the softmax. Float32, the
weights and decoder of tests/reference/torch_reference.py. Prints one JSON line with
generated tokens/s (prefill included in the wall time, as in an RL rollout).
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from torch_reference import Reference, rms_norm, rope_inv_freq  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=24)
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ref = Reference(a.model, "float32")
    c, W = ref.cfg, ref.W
    B, P, N = a.batch, a.prompt_len, a.gen
    H, KV, D = c.n_heads, c.n_kv_heads, c.head_dim
    group = H // KV
    T = P + N
    angles = torch.arange(T, dtype=torch.float64)[:, None] * rope_inv_freq(c)[None, :]
    angles = torch.cat((angles, angles), dim=-1)
    cos_all, sin_all = angles.cos().float(), angles.sin().float()

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        b = W.get(name + ".bias")
        return y if b is None else y + b

    def rope(x, cos, sin):  # x [B, n, h, D]
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        rot = torch.cat((-x2, x1), dim=-1)
        return x * cos[None, :, None, :] + rot * sin[None, :, None, :]

    def forward(ids, start, cache):  # ids [B, n] -> logits of the last position [B, V]
        n = ids.shape[1]
        x = W["model.embed_tokens.weight"][ids]
        cos, sin = cos_all[start:start + n], sin_all[start:start + n]
        for i in range(c.n_layers):
            p = f"model.layers.{i}."
            h = rms_norm(x, W[p + "input_layernorm.weight"], c.eps)
            q = lin(h, p + "self_attn.q_proj").view(B, n, H, D)
            k = lin(h, p + "self_attn.k_proj").view(B, n, KV, D)
            v = lin(h, p + "self_attn.v_proj").view(B, n, KV, D)
            if c.qk_norm:
                q = rms_norm(q, W[p + "self_attn.q_norm.weight"], c.eps)
                k = rms_norm(k, W[p + "self_attn.k_norm.weight"], c.eps)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            kc, vc = cache[i]
            kc[:, start:start + n], vc[:, start:start + n] = k, v
            keys = kc[:, :start + n].repeat_interleave(group, dim=2)
            vals = vc[:, :start + n].repeat_interleave(group, dim=2)
            s = torch.einsum("bqhd,bkhd->bhqk", q, keys) / math.sqrt(D)
            if n > 1:
                mask = torch.ones(n, start + n, dtype=torch.bool).tril(start)
                s = s.masked_fill(~mask, float("-inf"))
            o = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, dim=-1), vals).reshape(B, n, H * D)
            x = x + lin(o, p + "self_attn.o_proj")
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], c.eps)
            x = x + lin(torch.nn.functional.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = rms_norm(x[:, -1], W["model.norm.weight"], c.eps)
        return x @ W["lm_head.weight"].T

    g = torch.Generator().manual_seed(0)
    times = []
    with torch.no_grad():
        for _ in range(a.reps):
            ids = torch.randint(0, c.vocab, (B, P), generator=g)
            cache = [(torch.zeros(B, T, KV, D), torch.zeros(B, T, KV, D)) for _ in range(c.n_layers)]
            t0 = time.perf_counter()
            logits = forward(ids, 0, cache)
            for t in range(N):
                tok = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=g)  # [B, 1]
                if t + 1 < N:
                    logits = forward(tok, P + t, cache)
            times.append(time.perf_counter() - t0)
    best = sorted(times)[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "batch": B, "prompt_len": P, "gen": N, "threads": a.threads,
                      "seconds_median": best, "generated_tokens_per_s": B * N / best}))


if __name__ == "__main__":
    main()
