#!/usr/bin/python3
"""Pre-quantized Hugging Face FP8 checkpoints: `tidal score` on an FP8 folder written by
make_fp8_checkpoint.py (numpy, no Tidal code) vs the torch reference (float64) on its dequantized
twin, with compare_score's f32 rule (every log-probability within 1e-3). Plus the bad-input
contract: a NaN code and a mismatched scale grid fail with one line naming the tensor. Also
`tidal quantize` through the CLI: scoring its output equals scoring the source with --quantization.

    /usr/bin/python3 tests/reference/verify_fp8_checkpoint.py --tidal build/tools/tidal/tidal --workdir /tmp/fp8

Prints one line per case and `N passed, M failed`; exit status 1 on any failure.
"""

import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_score  # noqa: E402
import make_fp8_checkpoint  # noqa: E402
import torch_reference  # noqa: E402

# name, make_fp8_checkpoint arguments, sequence length
CASES = [
    ("llama-e4m3-block128-partial",
     "--block 128 --arch llama --layers 2 --hidden 320 --heads 5 --kv-heads 1 --intermediate 864 --vocab 1000", 96),
    ("qwen3-e4m3-block128-bf16scales",
     "--block 128 --scale-dtype bf16 --arch qwen3 --layers 2 --hidden 256 --heads 4 --kv-heads 2 --head-dim 64"
     " --vocab 1500 --tie", 128),
    ("qwen2-e5m2-pertensor",
     "--block 0 --fmt e5m2 --arch qwen2 --layers 2 --hidden 256 --heads 4 --kv-heads 4 --vocab 1200", 64),
]


def read_header(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw, 8 + n


def write_with_header(path, header, raw, data_start):
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + raw[data_start:])


def expect_error(tidal, model, want, label):
    p = subprocess.run([tidal, "score", "--model", model, "--token-ids", "1,2,3"], capture_output=True, text=True,
                       timeout=120)
    lines = p.stderr.strip().splitlines()
    ok = p.returncode == 1 and len(lines) == 1 and want in lines[0]
    print(f"{'PASS' if ok else 'FAIL'} {label}: {lines[-1] if lines else '(no stderr)'}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tidal", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args(argv)
    n_pass = n_fail = 0
    for name, args, n in CASES:
        out = os.path.join(a.workdir, name)
        make_fp8_checkpoint.main([out] + args.split())
        vocab = int(args.split("--vocab ")[1].split()[0])
        rng = np.random.default_rng(7)
        ids = [int(t) for t in rng.integers(0, vocab, size=n)]
        ids[1], ids[2] = vocab - 1, 0
        try:
            ref_lp = torch_reference.Reference(os.path.join(out, "dense"), "float64").logprobs(ids)
            got = compare_score.run_tidal(a.tidal, os.path.join(out, "fp8"), ids, 5)
            ok, summary, _ = compare_score.check(got, ref_lp, ids, 5, "f32")
        except (torch_reference.ReferenceError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            ok, summary = False, f"ERROR {e}"
        print(f"{'PASS' if ok else 'FAIL'} {name}: {summary}")
        n_pass, n_fail = n_pass + ok, n_fail + (not ok)

    # Bad inputs, on the first case's folder.
    src = os.path.join(a.workdir, CASES[0][0], "fp8", "model.safetensors")
    bad = os.path.join(a.workdir, "bad")
    os.makedirs(bad, exist_ok=True)
    with open(os.path.join(a.workdir, CASES[0][0], "fp8", "config.json")) as f:
        cfg = f.read()
    with open(os.path.join(bad, "config.json"), "w") as f:
        f.write(cfg)
    header, raw, start = read_header(src)
    w = "model.layers.1.mlp.up_proj.weight"
    nan = bytearray(raw)
    nan[start + header[w]["data_offsets"][0] + 5] = 0x7F
    with open(os.path.join(bad, "model.safetensors"), "wb") as f:
        f.write(bytes(nan))
    ok = expect_error(a.tidal, bad, f"tensor '{w}': code 0x7f at [0, 5] is a NaN", "nan code")
    n_pass, n_fail = n_pass + ok, n_fail + (not ok)
    h = json.loads(json.dumps(header))
    s = w[: -len("weight")] + "weight_scale_inv"
    h[s]["shape"] = list(reversed(h[s]["shape"]))
    write_with_header(os.path.join(bad, "model.safetensors"), h, raw, start)
    ok = expect_error(a.tidal, bad, f"tensor '{s}' has shape", "scale grid mismatch")
    n_pass, n_fail = n_pass + ok, n_fail + (not ok)

    # `tidal quantize` round trip through the CLI: scoring the written checkpoint prints exactly what
    # scoring the source with --quantization prints (bit-identical logits -> identical JSON).
    dense = os.path.join(a.workdir, CASES[0][0], "dense")
    ids = ",".join(str(i) for i in range(1, 40, 3))
    for fmt in ("int8", "fp8:block128", "nvfp4", "mxfp4"):
        out = os.path.join(a.workdir, "quantized_" + fmt.replace(":", "_"))
        p = subprocess.run([a.tidal, "quantize", "--model", dense, "--format", fmt, out], capture_output=True,
                           text=True, timeout=300)
        want = subprocess.run([a.tidal, "score", "--model", dense, "--token-ids", ids, "--json", "--quantization", fmt],
                              capture_output=True, text=True, timeout=300).stdout
        got = subprocess.run([a.tidal, "score", "--model", out, "--token-ids", ids, "--json"], capture_output=True,
                             text=True, timeout=300).stdout
        ok = p.returncode == 0 and want != "" and want == got
        print(f"{'PASS' if ok else 'FAIL'} tidal quantize {fmt} round trip: {p.stdout.strip() or p.stderr.strip()}")
        n_pass, n_fail = n_pass + ok, n_fail + (not ok)
    print(f"{n_pass} passed, {n_fail} failed")
    return 0 if n_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
