#!/usr/bin/python3
"""The PyTorch anchor for `tidal rl bench-step`: the same decoder (from the model folder's
config.json), the same batch shapes, the same step (forward, loss, backward, clip, AdamW), written
the way a PyTorch user would (nn.Module, F.scaled-free attention, torch.optim.AdamW).

    /usr/bin/python3 bench/torch_trainer_step.py --model DIR --kind sft|grpo --batch 64 --seq-len 24
        [--prompt-len 8] [--steps 10] [--warmup 2] [--threads N]

Prints one JSON line like the Tidal command. Weights are random (speed does not depend on them).
"""

import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F


class Decoder(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        H, nh = c["hidden_size"], c["num_attention_heads"]
        nkv = c.get("num_key_value_heads", nh)
        hd = c.get("head_dim") or H // nh
        Fd, V = c["intermediate_size"], c["vocab_size"]
        arch = c["architectures"][0]
        self.nh, self.nkv, self.hd = nh, nkv, hd
        self.qkv_bias = arch == "Qwen2ForCausalLM"
        self.qk_norm = arch == "Qwen3ForCausalLM"
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.embed = torch.nn.Embedding(V, H)
        self.layers = torch.nn.ModuleList()
        for _ in range(c["num_hidden_layers"]):
            L = torch.nn.Module()
            L.n1 = torch.nn.Parameter(torch.ones(H))
            L.n2 = torch.nn.Parameter(torch.ones(H))
            L.q = torch.nn.Linear(H, nh * hd, bias=self.qkv_bias)
            L.k = torch.nn.Linear(H, nkv * hd, bias=self.qkv_bias)
            L.v = torch.nn.Linear(H, nkv * hd, bias=self.qkv_bias)
            L.o = torch.nn.Linear(nh * hd, H, bias=False)
            if self.qk_norm:
                L.qn = torch.nn.Parameter(torch.ones(hd))
                L.kn = torch.nn.Parameter(torch.ones(hd))
            L.g = torch.nn.Linear(H, Fd, bias=False)
            L.u = torch.nn.Linear(H, Fd, bias=False)
            L.d = torch.nn.Linear(Fd, H, bias=False)
            self.layers.append(L)
        self.norm = torch.nn.Parameter(torch.ones(H))
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.lm_head = None if self.tied else torch.nn.Linear(H, V, bias=False)
        inv = 1.0 / (c.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        self.register_buffer("inv_freq", inv.float(), persistent=False)

    def rms(self, x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rope(self, x, cos, sin):
        h = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin

    def forward(self, ids):
        B, T = ids.shape
        ang = torch.arange(T, dtype=torch.float32)[:, None] * self.inv_freq[None, :]
        ang = torch.cat((ang, ang), -1)
        cos, sin = ang.cos()[None, None], ang.sin()[None, None]
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        g = self.nh // self.nkv
        x = self.embed(ids)
        for L in self.layers:
            h = self.rms(x, L.n1)
            q = L.q(h).view(B, T, self.nh, self.hd).transpose(1, 2)
            k = L.k(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
            v = L.v(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
            if self.qk_norm:
                q, k = self.rms(q, L.qn), self.rms(k, L.kn)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
            a = torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ v
            x = x + L.o(a.transpose(1, 2).reshape(B, T, -1))
            h = self.rms(x, L.n2)
            x = x + L.d(F.silu(L.g(h)) * L.u(h))
        x = self.rms(x, self.norm)
        return x @ self.embed.weight.t() if self.tied else self.lm_head(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--kind", choices=("sft", "grpo"), default="sft")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=24)
    ap.add_argument("--prompt-len", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    c = json.load(open(os.path.join(a.model, "config.json")))
    model = Decoder(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    ids = torch.randint(0, c["vocab_size"], (a.batch, a.seq_len))
    rewards = torch.randint(0, 2, (a.batch,)).double()

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(ids)[:, :-1]
        lp = logits.gather(-1, ids[:, 1:, None]).squeeze(-1) - logits.logsumexp(-1)
        if a.kind == "sft":
            loss = -lp.mean()
        else:
            r = rewards.view(-1, 8)
            adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)).view(-1, 1).float()
            comp = lp[:, a.prompt_len - 1:]
            ratio = torch.exp(comp - comp.detach())
            loss = torch.maximum(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    secs = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "kind": a.kind, "params": sum(p.numel() for p in model.parameters()),
                      "batch": a.batch, "seq_len": a.seq_len, "steps_per_s": a.steps / secs,
                      "tokens_per_s": a.steps * a.batch * a.seq_len / secs, "threads": torch.get_num_threads(),
                      "last_loss": loss}))


if __name__ == "__main__":
    main()
