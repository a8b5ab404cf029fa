#!/usr/bin/python3
"""A stand-in for `tidal score --json`, used only to test compare_score.py / verify_all.py
before (or besides) the real binary: the torch reference run in float32, optionally with a
deliberate bug chosen by the environment variable TIDAL_FAKE_BUG:
  gqa_tile          query head h reads kv head h % n_kv (tile instead of repeat-interleave)
  rope_interleaved  RoPE on (x[2i], x[2i+1]) pairs instead of rotate-half
  logprob_offset    adds 2e-3 to every log-prob it prints
  top1_swap         swaps the first two top entries' ids on every 20th position

    tests/reference/fake_tidal.py score --model DIR --token-ids 1,2,3 --top K --json
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as tr  # noqa: E402


class Buggy(tr.Reference):
    bug = os.environ.get("TIDAL_FAKE_BUG", "")

    def expand_kv(self, x, group):
        if self.bug == "gqa_tile":
            return x.repeat(1, group, 1)
        return super().expand_kv(x, group)

    def rope(self, x, cos, sin):
        if self.bug == "rope_interleaved":
            half = x.shape[-1] // 2
            c = cos[:, None, :half].repeat_interleave(2, dim=-1)
            s = sin[:, None, :half].repeat_interleave(2, dim=-1)
            x1, x2 = x[..., 0::2], x[..., 1::2]
            rot = torch.stack((-x2, x1), dim=-1).flatten(-2)
            return x * c + rot * s
        return super().rope(x, cos, sin)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["score"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--token-ids", required=True)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        ids = tr.parse_ids(a.token_ids)
        out = Buggy(a.model, "float32").score(ids, a.top)
    except tr.ReferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if Buggy.bug == "logprob_offset":
        for e in out:
            if "next_logprob" in e:
                e["next_logprob"] += 2e-3
            e["top"] = [[j, lp + 2e-3] for j, lp in e["top"]]
    if Buggy.bug == "top1_swap":
        for e in out[::20]:
            if len(e["top"]) >= 2:
                (a0, l0), (a1, l1) = e["top"][0], e["top"][1]
                e["top"][0], e["top"][1] = [a1, l0], [a0, l1]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
