#!/usr/bin/env python3
"""Scores models written by `tidal model init` (every architecture, F32 and BF16, tied/untied,
sharded) with the independent reference via compare_score.py. Prints one line per case and
`N passed, M failed`; exits non-zero on any failure."""
import argparse, os, random, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = [
    # name, init flags, mode, sequence length
    ("llama-f32-g4", ["--arch", "llama", "--heads", "8", "--kv-heads", "2", "--dtype", "f32"], "f32", 96),
    ("llama-bf16-tied-llama3", ["--arch", "llama", "--heads", "4", "--kv-heads", "4", "--tie", "--dtype", "bf16",
                                "--rope-scaling", "llama3"], "bf16", 300),
    ("qwen2-f32-shards", ["--arch", "qwen2", "--heads", "8", "--kv-heads", "1", "--dtype", "f32", "--shards", "3"], "f32", 64),
    ("qwen3-f32-hd128", ["--arch", "qwen3", "--heads", "4", "--kv-heads", "1", "--head-dim", "128", "--dtype", "f32"], "f32", 128),
    ("qwen3-bf16", ["--arch", "qwen3", "--heads", "8", "--kv-heads", "2", "--dtype", "bf16"], "bf16", 200),
    ("qwen3-f16-tied", ["--arch", "qwen3", "--heads", "4", "--kv-heads", "2", "--tie", "--dtype", "f16"], "f32", 64),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tidal", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    passed = failed = 0
    for name, flags, mode, n in CASES:
        out = os.path.join(a.workdir, name)
        t0 = time.time()
        r = subprocess.run([a.tidal, "model", "init", "--force", "--layers", "2", "--hidden", "256",
                            "--vocab", "1500", "--seed", str(len(name))] + flags + [out],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {name}: model init: {r.stderr.strip()}")
            failed += 1
            continue
        rng = random.Random(name)
        ids = ",".join(str(rng.randrange(1500)) for _ in range(n))
        r = subprocess.run([sys.executable, os.path.join(HERE, "compare_score.py"), "--tidal", a.tidal,
                            "--model", out, "--token-ids", ids, "--top", "5", "--mode", mode],
                           capture_output=True, text=True)
        ok = r.returncode == 0
        passed += ok
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name} [{time.time() - t0:.1f}s]: {(r.stdout + r.stderr).strip()}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
