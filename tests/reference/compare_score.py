#!/usr/bin/python3
"""Compares `tidal score --json` with the independent torch reference on one model.

    /usr/bin/python3 tests/reference/compare_score.py --tidal build/tools/tidal/tidal \
        --model DIR --token-ids 1,2,3 --top K [--mode f32|bf16] [--tidal-arg=--threads=2 ...]

Checks on the parsed JSON (not the text):
  * structure: one element per token, position i, next_id == ids[i+1], no next_id/next_logprob
    on the last element, min(K, vocab) top entries, best first (descending logprob);
  * mode f32: every next_logprob and every top-K logprob (looked up by id in the reference's full
    log-prob row) within 1e-3 of the reference; every top-K id is a true top-K id of the reference
    up to ties (its reference logprob >= the reference's K-th best - 1e-3);
  * mode bf16: top-1 id agrees on >= 99% of positions; a different id counts as agreement when its
    reference logprob is within 1e-4 of the reference's best.
Prints one summary line; exit status 0 on pass, 1 on fail, 2 on a usage/run error.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference  # noqa: E402

F32_TOL = 1e-3
BF16_AGREEMENT = 0.99
TIE_TOL = 1e-4


def run_tidal(tidal, model, ids, top, extra_args=(), timeout=600):
    cmd = [tidal, "score", "--model", model, "--token-ids", ",".join(map(str, ids)), "--top", str(top), "--json"]
    cmd += list(extra_args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"tidal score exited {p.returncode}: {err}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"tidal score stdout is not one JSON value: {e}: {p.stdout[:200]!r}")


def _delta(a, b):
    d = abs(a - b)
    return d if d == d else float("inf")  # NaN (or inf - inf) is a mismatch, never a pass


def check(tidal_out, ref_lp, ids, top, mode):
    """Returns (ok, summary, problems). ref_lp: reference log-probs [n, V] float64."""
    n, V = ref_lp.shape
    k = min(top, V)
    problems = []
    if not isinstance(tidal_out, list) or len(tidal_out) != n:
        got = len(tidal_out) if isinstance(tidal_out, list) else type(tidal_out).__name__
        return False, f"FAIL structure: expected {n} elements, got {got}", [f"length {got}"]
    max_delta, worst = 0.0, None
    agree = 0
    for i, e in enumerate(tidal_out):
        row = ref_lp[i]
        if e.get("position") != i:
            problems.append(f"pos {i}: position field {e.get('position')!r}")
        if i + 1 < n:
            if e.get("next_id") != ids[i + 1]:
                problems.append(f"pos {i}: next_id {e.get('next_id')!r} != {ids[i + 1]}")
            if "next_logprob" not in e:
                problems.append(f"pos {i}: next_logprob missing")
            else:
                d = _delta(float(e["next_logprob"]), row[ids[i + 1]])
                if d > max_delta:
                    max_delta, worst = d, f"pos {i} next_logprob"
        elif "next_id" in e or "next_logprob" in e:
            problems.append(f"pos {i}: last element has next_id/next_logprob")
        t = e.get("top")
        if not isinstance(t, list) or len(t) != k:
            problems.append(f"pos {i}: top has {len(t) if isinstance(t, list) else t!r} entries, expected {k}")
            continue
        try:
            t_ids = [int(p[0]) for p in t]
            t_lps = [float(p[1]) for p in t]
        except (TypeError, ValueError, IndexError):
            problems.append(f"pos {i}: malformed top entries")
            continue
        if any(not 0 <= j < V for j in t_ids):
            problems.append(f"pos {i}: top id outside vocabulary")
            continue
        if any(not t_lps[j] >= t_lps[j + 1] for j in range(len(t_lps) - 1)):
            problems.append(f"pos {i}: top not sorted best first")
        if len(set(t_ids)) != len(t_ids):
            problems.append(f"pos {i}: duplicate ids in top")
        for j, lp in zip(t_ids, t_lps):
            d = _delta(lp, row[j])
            if d > max_delta:
                max_delta, worst = d, f"pos {i} top id {j}"
        if k == 0:
            continue
        best = row.max()
        if t_ids[0] == int(row.argmax()) or best - row[t_ids[0]] <= TIE_TOL:
            agree += 1
        if mode == "f32":
            kth = np.partition(row, V - k)[V - k]  # reference's k-th best log-prob
            for j in t_ids:
                if row[j] < kth - F32_TOL:
                    problems.append(f"pos {i}: top id {j} (ref {row[j]:.6f}) is not in the reference top-{k} (k-th {kth:.6f})")
                    break
    agreement = agree / n if k > 0 else 1.0
    if mode == "f32":
        if max_delta > F32_TOL:
            problems.append(f"max |delta| {max_delta:.3g} > {F32_TOL:g} at {worst}")
    else:
        if agreement < BF16_AGREEMENT:
            problems.append(f"top-1 agreement {agreement:.4f} < {BF16_AGREEMENT}")
    ok = not problems
    summary = (f"{'PASS' if ok else 'FAIL'} mode={mode} n={n} max_delta={max_delta:.3g}"
               f"{f' ({worst})' if worst else ''} top1_agreement={agree}/{n}={agreement:.4f}")
    if problems:
        summary += f" | {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
    return ok, summary, problems


def compare(tidal, model, ids, top, mode, extra_args=(), reference=None):
    """Runs both sides; returns (ok, summary, problems)."""
    ref = reference or torch_reference.Reference(model, "float64")
    ref_lp = ref.logprobs(ids)
    out = run_tidal(tidal, model, ids, top, extra_args)
    return check(out, ref_lp, ids, top, mode)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare tidal score with the torch reference.")
    ap.add_argument("--tidal", required=True, help="path to the tidal binary")
    ap.add_argument("--model", required=True)
    ap.add_argument("--token-ids", required=True)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--mode", choices=("f32", "bf16"), default="f32")
    ap.add_argument("--tidal-arg", action="append", default=[], help="extra argument for tidal score (repeatable)")
    ap.add_argument("--verbose", action="store_true", help="list every problem")
    a = ap.parse_args(argv)
    try:
        ids = torch_reference.parse_ids(a.token_ids)
        ok, summary, problems = compare(a.tidal, a.model, ids, a.top, a.mode, a.tidal_arg)
    except (torch_reference.ReferenceError, RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"ERROR {e}")
        return 2
    print(summary)
    if a.verbose:
        for p in problems:
            print("  " + p)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
