#!/usr/bin/python3
"""Independent PyTorch computation of the trainer's losses and gradients, in float64.

    /usr/bin/python3 tests/rl/torch_trainer_reference.py INPUT.json OUTPUT.json

Shares no code with Tidal: the forward pass is tests/reference/torch_reference.py (its own
safetensors parser and Llama/Qwen2/Qwen3 decoder), made differentiable; the losses below are
written from their definitions (docs/trainer.md), not from the C++.

INPUT: {"model": DIR, "kind": "logprobs" | "sft" | "grpo", ...}
  logprobs: {"sequences": [[ids]]}                    -> {"logprobs": [[log p(ids[t] | ids[..t-1])], ...]}
  sft:      {"sequences": [{"tokens", "mask"}]}        -> {"loss", "grads": {name: [flat values]}}
  grpo:     {"samples": [{"tokens", "n_prompt", "reward", "group", optional "advantage", "mask",
             "rollout", "old", "ref"}], "policy": {"clip_low", "clip_high", "kl_coef", "tis_cap",
             "aggregation": "token"|"sequence", "scale_by_std", "adv_eps"}, optional "reference": DIR}
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from torch_reference import Reference  # noqa: E402

DT = torch.float64
_logits = Reference.logits.__wrapped__  # the undecorated forward (Reference.logits is no_grad)


def token_logprobs(model, ids):
    """log p(ids[t] | ids[..t-1]) for t = 1..n-1, differentiable, float64."""
    lp = torch.log_softmax(_logits(model, ids).to(DT), dim=-1)
    return lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]


def sft_loss(model, spec):
    num, den = 0.0, 0.0
    for s in spec["sequences"]:
        lp = token_logprobs(model, s["tokens"])
        m = torch.tensor(s["mask"][1:], dtype=DT)
        num = num + (lp * m).sum()
        den = den + m.sum()
    return -num / den


def advantages(samples, scale_by_std, eps):
    if all("advantage" in s for s in samples):
        return [float(s["advantage"]) for s in samples]
    groups = {}
    for i, s in enumerate(samples):
        groups.setdefault(s["group"], []).append(i)
    adv = [0.0] * len(samples)
    for idx in groups.values():
        r = torch.tensor([samples[i]["reward"] for i in idx], dtype=DT)
        if len(idx) < 2:
            continue  # no baseline: advantage 0
        a = (r - r.mean()) / (r.std(unbiased=True) + eps) if scale_by_std else r - r.mean()
        for j, i in enumerate(idx):
            adv[i] = float(a[j])
    return adv


def grpo_loss(model, ref_model, spec):
    p = spec["policy"]
    samples = spec["samples"]
    adv = advantages(samples, p.get("scale_by_std", True), p.get("adv_eps", 1e-6))
    per_seq, total_num, total_den = [], 0.0, 0.0
    for s, a in zip(samples, adv):
        ids, n_prompt = s["tokens"], s["n_prompt"]
        lp = token_logprobs(model, ids)[n_prompt - 1:]  # completion tokens
        n = lp.shape[0]
        mask = torch.tensor(s.get("mask") or [1.0] * n, dtype=DT)
        old = torch.tensor(s["old"], dtype=DT) if s.get("old") else lp.detach()
        ratio = torch.exp(lp - old)
        pg = torch.maximum(-a * ratio, -a * torch.clamp(ratio, 1 - p["clip_low"], 1 + p["clip_high"]))
        if s.get("rollout") and p["tis_cap"] > 0:
            w = torch.clamp(torch.exp(old - torch.tensor(s["rollout"], dtype=DT)), max=p["tis_cap"])
            pg = pg * w.detach()
        per_token = pg
        if p["kl_coef"] > 0:
            if s.get("ref"):
                ref = torch.tensor(s["ref"], dtype=DT)
            else:
                with torch.no_grad():
                    ref = token_logprobs(ref_model, ids)[n_prompt - 1:]
            d = ref - lp
            per_token = per_token + p["kl_coef"] * (torch.exp(d) - d - 1)
        num = (per_token * mask).sum()
        if mask.sum() > 0:
            per_seq.append(num / mask.sum())
        total_num = total_num + num
        total_den = total_den + mask.sum()
    if p["aggregation"] == "token":
        return total_num / total_den
    return sum(per_seq) / len(per_seq)


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(1)
    model = Reference(spec["model"], "float64")
    if spec["kind"] == "logprobs":
        with torch.no_grad():
            out = {"logprobs": [token_logprobs(model, ids).tolist() for ids in spec["sequences"]]}
    else:
        for t in model.W.values():
            t.requires_grad_(True)
        if spec["kind"] == "sft":
            loss = sft_loss(model, spec)
        else:
            ref_model = Reference(spec["reference"], "float64") if spec.get("reference") else None
            loss = grpo_loss(model, ref_model, spec)
        loss.backward()
        grads = {}
        for name, t in model.W.items():
            if name == "lm_head.weight" and model.tied:
                continue  # the embedding's gradient already holds both uses
            grads[name] = t.grad.flatten().tolist()
        out = {"loss": loss.item(), "grads": grads}
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
