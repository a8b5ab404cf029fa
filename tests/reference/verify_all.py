#!/usr/bin/python3
"""The issue-2 verification matrix: random-weight models written by make_test_model.py (not by
Tidal), each scored by `tidal score --json` and by the torch reference (float64), compared with
compare_score.py's rules.

    /usr/bin/python3 tests/reference/verify_all.py --tidal build/tools/tidal/tidal --workdir /tmp/tidal-verify \
        [--filter SUBSTRING] [--tidal-arg=--threads=2 ...] [--list]

Prints one line per case and a final `N passed, M failed` line; exit status 1 on any failure.

Coverage: each architecture x 3+ configs; GQA group sizes 1, 2, 4, 8; head_dim 64 and 128
(and Qwen3 with heads*head_dim != hidden); tied and untied; sequence lengths 1..512; F32, F16
and BF16 weights; one 3-shard and one 2-shard model; one llama3 rope_scaling model; vocab
and intermediate sizes that are not multiples of 16; ids 0 and vocab-1 in every sequence.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_score  # noqa: E402
import make_test_model  # noqa: E402
import torch_reference  # noqa: E402

# name, make_test_model arguments, sequence length, mode, top-K
CASES = [
    ("llama-g1-hd64-untied-f32",
     "--arch llama --layers 2 --hidden 256 --heads 4 --kv-heads 4 --vocab 2048", 128, "f32", 5),
    ("llama-g4-hd128-tied-f32-llama3rope",
     "--arch llama --layers 2 --hidden 512 --heads 4 --kv-heads 1 --vocab 1500 --tie"
     " --rope-theta 500000 --llama3-rope 8,1,4,256", 512, "f32", 5),
    ("llama-g8-hd64-untied-bf16-3shards",
     "--arch llama --layers 3 --hidden 512 --heads 8 --kv-heads 1 --vocab 3000 --dtype bf16 --shards 3", 256, "bf16", 5),
    ("llama-g2-hd64-untied-f16-attnbias",
     "--arch llama --layers 2 --hidden 256 --heads 4 --kv-heads 2 --vocab 1000 --dtype f16 --attention-bias",
     64, "f32", 5),
    ("llama-g1-hd64-untied-f32-seq1",
     "--arch llama --layers 1 --hidden 128 --heads 2 --kv-heads 2 --vocab 1000", 1, "f32", 20),
    ("qwen2-g4-hd64-tied-f32-vocab1003",
     "--arch qwen2 --layers 2 --hidden 256 --heads 4 --kv-heads 1 --vocab 1003 --intermediate 680 --tie"
     " --rope-theta 1000000", 200, "f32", 5),
    ("qwen2-g1-hd128-untied-bf16",
     "--arch qwen2 --layers 2 --hidden 512 --heads 4 --kv-heads 4 --vocab 2000 --dtype bf16", 512, "bf16", 5),
    ("qwen2-g8-hd64-untied-f32-2shards",
     "--arch qwen2 --layers 2 --hidden 512 --heads 8 --kv-heads 1 --vocab 2500 --shards 2", 300, "f32", 8),
    ("qwen3-g8-hd128-untied-f32-qdim1024",
     "--arch qwen3 --layers 2 --hidden 256 --heads 8 --kv-heads 1 --head-dim 128 --vocab 2000"
     " --rope-theta 1000000", 512, "f32", 5),
    ("qwen3-g1-hd64-tied-bf16",
     "--arch qwen3 --layers 3 --hidden 256 --heads 4 --kv-heads 4 --head-dim 64 --vocab 4000 --tie --dtype bf16",
     384, "bf16", 5),
    ("qwen3-g4-hd64-tied-f32-qdim512",
     "--arch qwen3 --layers 2 --hidden 384 --heads 8 --kv-heads 2 --head-dim 64 --vocab 1200 --tie"
     " --intermediate 1000", 100, "f32", 5),
]


def token_ids(seed, n, vocab):
    rng = np.random.default_rng(1000 + seed)
    ids = [int(t) for t in rng.integers(0, vocab, size=n)]
    if n >= 3:
        ids[1], ids[2] = vocab - 1, 0  # the edges of the embedding / lm_head tables
    return ids


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run the Tidal-vs-reference verification matrix.")
    ap.add_argument("--tidal", required=True, help="path to the tidal binary")
    ap.add_argument("--workdir", required=True, help="where the test models are written")
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--tidal-arg", action="append", default=[], help="extra argument for tidal score (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    a = ap.parse_args(argv)
    cases = [c for c in CASES if a.filter in c[0]]
    if a.list:
        for name, margs, n, mode, top in cases:
            print(f"{name}: make_test_model.py {margs} --seed S; seq {n}; mode {mode}; top {top}")
        return 0
    passed = failed = 0
    t_all = time.time()
    for seed, (name, margs, n, mode, top) in enumerate(CASES):
        if a.filter not in name:
            continue
        t0 = time.time()
        model_dir = os.path.join(a.workdir, name)
        try:
            make_test_model.write_model(make_test_model.parse_args(margs.split() + ["--seed", str(seed), model_dir]))
            ref = torch_reference.Reference(model_dir, "float64")
            ids = token_ids(seed, n, ref.cfg.vocab)
            ok, summary, _ = compare_score.compare(a.tidal, model_dir, ids, top, mode, a.tidal_arg, reference=ref)
        except (torch_reference.ReferenceError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            ok, summary = False, f"ERROR {e}"
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name} [{time.time() - t0:.1f}s]: {summary}", flush=True)
    print(f"{passed} passed, {failed} failed ({time.time() - t_all:.0f}s)")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
