#!/usr/bin/python3
"""Self-consistency checks of the torch reference (and of make_test_model / compare_score), run
before any Tidal binary exists.

    /usr/bin/python3 tests/reference/self_test.py [--workdir DIR] [--verbose]

Prints one line per check and `N passed, M failed`; exit status 0 only if all pass.
"""

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare_score  # noqa: E402
import make_test_model as mtm  # noqa: E402
import torch_reference as tr  # noqa: E402

PY = "/usr/bin/python3"
ARCH_ARGS = {
    "llama": "--arch llama --layers 2 --hidden 128 --heads 4 --kv-heads 2 --vocab 600",
    "llama3rope": "--arch llama --layers 2 --hidden 128 --heads 2 --kv-heads 1 --vocab 600"
                  " --rope-theta 500000 --llama3-rope 8,1,4,64",
    "llama-bias": "--arch llama --layers 2 --hidden 128 --heads 4 --kv-heads 1 --vocab 600 --attention-bias",
    "qwen2": "--arch qwen2 --layers 2 --hidden 128 --heads 4 --kv-heads 1 --vocab 600 --rope-theta 1e6",
    "qwen3": "--arch qwen3 --layers 2 --hidden 128 --heads 4 --kv-heads 2 --head-dim 64 --vocab 600 --tie",
}


class Ctx:
    def __init__(self, workdir):
        self.workdir = workdir
        self.n = 0

    def model(self, args, name=None, **overrides):
        self.n += 1
        out = os.path.join(self.workdir, name or f"m{self.n}")
        a = mtm.parse_args(args.split() + [out])
        for k, v in overrides.items():
            setattr(a, k, v)
        mtm.write_model(a)
        return out


def ids_for(n, vocab, seed=0):
    return [int(t) for t in np.random.default_rng(seed).integers(0, vocab, size=n)]


def rewrite(src, dst, weights, config_update=None):
    """Copy a model folder with new weights (f32, single file) and config changes."""
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(config_update or {})
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f)
    mtm.write_safetensors(os.path.join(dst, "model.safetensors"), list(weights.items()), "f32")
    return dst


# ----------------------------------------------------------------------------------------------
# A second, deliberately different implementation: numpy, float64, one token at a time with a
# KV cache, explicit loops over heads, RoPE as complex rotation of (x[i], x[i + D/2]),
# llama3 scaling as Meta's scalar `apply_scaling`. Config read from the raw JSON.
# ----------------------------------------------------------------------------------------------


def meta_llama3_scaling(freqs, rs):
    scale, low, high, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / low, old / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(freq)
        elif wavelen > low_wavelen:
            out.append(freq / scale)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append((1 - smooth) * freq / scale + smooth * freq)
    return out


def numpy_decode_logprobs(model_dir, ids):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    W = {k: v.astype(np.float64) for k, v in tr.load_weights(model_dir).items()}
    arch = c["architectures"][0]
    E, H, KV = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    D = c.get("head_dim") or E // H
    eps = c["rms_norm_eps"]
    freqs = [c["rope_theta"] ** (-(2 * i) / D) for i in range(D // 2)]
    if c.get("rope_scaling"):
        freqs = meta_llama3_scaling(freqs, c["rope_scaling"])
    lm_head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    if c.get("tie_word_embeddings"):
        lm_head = W["model.embed_tokens.weight"]

    def norm(x, w):
        return w * x / math.sqrt(float(np.dot(x, x)) / len(x) + eps)

    def lin(x, name):
        y = W[name + ".weight"] @ x
        return y + W[name + ".bias"] if name + ".bias" in W else y

    def rope(x, t):  # x [D]
        z = (x[: D // 2] + 1j * x[D // 2 :]) * np.exp(1j * t * np.array(freqs))
        return np.concatenate([z.real, z.imag])

    cache = [([], []) for _ in range(c["num_hidden_layers"])]
    out = []
    for t, tok in enumerate(ids):
        x = W["model.embed_tokens.weight"][tok].copy()
        for l in range(c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = norm(x, W[p + "input_layernorm.weight"])
            q = lin(h, p + "self_attn.q_proj").reshape(H, D)
            k = lin(h, p + "self_attn.k_proj").reshape(KV, D)
            v = lin(h, p + "self_attn.v_proj").reshape(KV, D)
            if arch == "Qwen3ForCausalLM":
                q = np.stack([norm(qh, W[p + "self_attn.q_norm.weight"]) for qh in q])
                k = np.stack([norm(kh, W[p + "self_attn.k_norm.weight"]) for kh in k])
            q = np.stack([rope(qh, t) for qh in q])
            k = np.stack([rope(kh, t) for kh in k])
            ks, vs = cache[l]
            ks.append(k)
            vs.append(v)
            K, Vv = np.stack(ks), np.stack(vs)  # [t+1, KV, D]
            o = np.zeros((H, D))
            for head in range(H):
                g = head // (H // KV)
                s = K[:, g, :] @ q[head] / math.sqrt(D)
                w = np.exp(s - s.max())
                o[head] = (w / w.sum()) @ Vv[:, g, :]
            x = x + lin(o.reshape(-1), p + "self_attn.o_proj")
            h = norm(x, W[p + "post_attention_layernorm.weight"])
            g_ = lin(h, p + "mlp.gate_proj")
            x = x + lin(g_ / (1 + np.exp(-g_)) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        logits = lm_head @ norm(x, W["model.norm.weight"])
        m = logits.max()
        out.append(logits - m - math.log(np.exp(logits - m).sum()))
    return np.stack(out)


# ----------------------------------------------------------------------------------------------
# checks: each returns a detail string or raises AssertionError
# ----------------------------------------------------------------------------------------------


def check_matches_numpy_decode(ctx, key):
    d = ctx.model(ARCH_ARGS[key], seed=3)
    ids = ids_for(40, 600, 1)
    a = tr.Reference(d).logprobs(ids)
    b = numpy_decode_logprobs(d, ids)
    err = np.abs(a - b).max()
    assert err < 1e-9, f"max |delta| {err:.3g}"
    return f"max |delta| {err:.2e}"


def check_prefix(ctx, key):
    d = ctx.model(ARCH_ARGS[key] + " --dtype bf16", seed=4)
    ref = tr.Reference(d)
    ids = ids_for(160, 600, 2)
    full = ref.logprobs(ids)
    worst = 0.0
    for m in (1, 2, 17, 100, 159):
        worst = max(worst, np.abs(ref.logprobs(ids[:m]) - full[:m]).max())
    assert worst < 1e-10, f"prefix changed by {worst:.3g}"
    return f"max |delta| {worst:.2e}"


def check_f32_vs_f64(ctx, key):
    d = ctx.model(ARCH_ARGS[key] + " --layers 3", seed=5)
    ids = ids_for(256, 600, 3)
    err = np.abs(tr.Reference(d, "float32").logprobs(ids) - tr.Reference(d, "float64").logprobs(ids)).max()
    assert err < 1e-4, f"max |delta| {err:.3g}"
    return f"max |delta| {err:.2e}"


def check_tied_untied(ctx):
    d = ctx.model(ARCH_ARGS["qwen3"], seed=6)  # tied
    ids = ids_for(50, 600, 4)
    base = tr.Reference(d).logprobs(ids)
    w = tr.load_weights(d)
    assert "lm_head.weight" not in w
    w_untied = dict(w, **{"lm_head.weight": w["model.embed_tokens.weight"].copy()})
    u = rewrite(d, os.path.join(ctx.workdir, "untied_copy"), w_untied, {"tie_word_embeddings": False})
    e1 = np.abs(tr.Reference(u).logprobs(ids) - base).max()
    a = rewrite(d, os.path.join(ctx.workdir, "untied_absent"), w, {"tie_word_embeddings": False})
    e2 = np.abs(tr.Reference(a).logprobs(ids) - base).max()
    # tie=true must ignore a present, different lm_head
    w_other = dict(w, **{"lm_head.weight": w["model.embed_tokens.weight"][::-1].copy()})
    t = rewrite(d, os.path.join(ctx.workdir, "tied_with_head"), w_other, {"tie_word_embeddings": True})
    e3 = np.abs(tr.Reference(t).logprobs(ids) - base).max()
    uo = rewrite(d, os.path.join(ctx.workdir, "untied_other"), w_other, {"tie_word_embeddings": False})
    e4 = np.abs(tr.Reference(uo).logprobs(ids) - base).max()
    assert e1 == 0 and e2 == 0 and e3 == 0, (e1, e2, e3)
    assert e4 > 0.1, "untied lm_head not used"
    return "tied == untied copy == lm_head absent; untied uses its own lm_head"


def check_sharded(ctx):
    args = "--arch llama --layers 3 --hidden 128 --heads 4 --kv-heads 1 --vocab 700 --dtype bf16"
    one = ctx.model(args, seed=7)
    ids = ids_for(64, 700, 5)
    base = tr.Reference(one).logprobs(ids)
    worst = 0.0
    for n in (2, 5):
        sh = ctx.model(args + f" --shards {n}", seed=7)
        files = [f for f in os.listdir(sh) if f.endswith(".safetensors")]
        assert len(files) == n and "model.safetensors" not in files, files
        worst = max(worst, np.abs(tr.Reference(sh).logprobs(ids) - base).max())
    assert worst == 0, worst
    return "2 and 5 shards bit-identical to one file"


def check_gqa_expand(ctx, key):
    d = ctx.model(ARCH_ARGS[key], seed=8)
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]
    D = c.get("head_dim") or c["hidden_size"] // H
    assert KV < H
    g = H // KV
    w = tr.load_weights(d)
    for name in list(w):
        if name.endswith(("k_proj.weight", "v_proj.weight", "k_proj.bias", "v_proj.bias")):
            t = w[name]
            w[name] = np.repeat(t.reshape(KV, D, *t.shape[1:]), g, axis=0).reshape(H * D, *t.shape[1:])
    e = rewrite(d, os.path.join(ctx.workdir, f"gqa_expanded_{key}"), w, {"num_key_value_heads": H})
    ids = ids_for(80, 600, 6)
    err = np.abs(tr.Reference(e).logprobs(ids) - tr.Reference(d).logprobs(ids)).max()
    assert err < 1e-12, f"max |delta| {err:.3g}"
    return f"kv_heads {KV}->{H} by repeating kv heads: max |delta| {err:.1e}"


def check_dtype_codecs(ctx):
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.standard_normal(20000).astype(np.float32) * 3,
                        np.float32([0.0, -0.0, 1.0, -2.5, 1e-30, 3e38, 65504.0, 6e-8])]).astype(np.float32)
    # include exact halfway cases for bf16 rounding: low 16 bits == 0x8000
    halves = (rng.integers(0x3F800000, 0x40800000, 1000, dtype=np.uint32) & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    x = np.concatenate([x, halves.view(np.float32)])
    path = os.path.join(ctx.workdir, "codec.safetensors")
    details = []
    for dt, tdt in (("bf16", torch.bfloat16), ("f16", torch.float16), ("f32", torch.float32)):
        xs = x if dt != "f16" else x[np.abs(x) <= 65504]
        mtm.write_safetensors(path, [("t", xs)], dt)
        got = tr.read_safetensors(path)["t"]
        want = torch.from_numpy(xs).to(tdt).to(torch.float32).numpy()
        bad = int((got.view(np.uint32) != want.view(np.uint32)).sum())
        assert bad == 0, f"{dt}: {bad} values differ from torch's conversion"
        details.append(f"{dt} {xs.size}")
    return "writer+reader == torch round-to-nearest-even: " + ", ".join(details)


def check_every_tensor_matters(ctx, key):
    d = ctx.model(ARCH_ARGS[key] + " --layers 1", seed=10)
    ids = ids_for(24, 600, 7)
    base = tr.Reference(d).logprobs(ids)
    w = tr.load_weights(d)
    dead = []
    for name in w:
        w2 = dict(w)
        w2[name] = w[name] * np.float32(1.5) + np.float32(0.05)
        p = rewrite(d, os.path.join(ctx.workdir, "perturbed"), w2)
        if np.abs(tr.Reference(p).logprobs(ids) - base).max() < 1e-6:
            dead.append(name)
    assert not dead, f"unused: {dead}"
    return f"{len(w)} tensors all affect the output"


def check_llama3_scaling(ctx):
    plain = ctx.model("--arch llama --layers 2 --hidden 128 --heads 2 --vocab 600 --rope-theta 500000", seed=11)
    scaled = ctx.model("--arch llama --layers 2 --hidden 128 --heads 2 --vocab 600 --rope-theta 500000"
                       " --llama3-rope 8,1,4,64", seed=11)
    cfg = tr.Config.load(scaled)
    inv = tr.rope_inv_freq(cfg).numpy()
    base = [500000.0 ** (-(2 * i) / 64) for i in range(32)]
    meta = np.array(meta_llama3_scaling(base, cfg.rope_scaling))
    err = np.abs(inv - meta).max() / np.abs(meta).max()
    assert err < 1e-14, err
    n_low = int(np.sum(np.isclose(inv, np.array(base) / 8)))
    n_high = int(np.sum(inv == np.array(base)))
    n_mid = 32 - n_low - n_high
    assert n_low > 0 and n_high > 0 and n_mid > 0, (n_low, n_mid, n_high)
    # HF's canonical Llama 3.1 values: factor 8, low 1, high 4, original 8192, theta 500000, D 128
    cfg.head_dim, cfg.rope_scaling = 128, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    inv128 = tr.rope_inv_freq(cfg).numpy()
    meta128 = np.array(meta_llama3_scaling([500000.0 ** (-(2 * i) / 128) for i in range(64)], cfg.rope_scaling))
    assert np.abs(inv128 - meta128).max() / meta128.max() < 1e-14
    ids = ids_for(200, 600, 8)
    diff = np.abs(tr.Reference(plain).logprobs(ids) - tr.Reference(scaled).logprobs(ids)).max()
    assert diff > 1e-3, f"scaling has no visible effect ({diff:.3g})"
    return f"inv_freq == Meta apply_scaling (bands low/mid/high {n_low}/{n_mid}/{n_high}); output moves by {diff:.2f}"


def check_rope_relative(ctx):
    # RoPE'd q.k depends only on the position difference (needs the HF rotate-half pairing)
    cfg = tr.Config({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 8,
                     "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 4})
    inv = tr.rope_inv_freq(cfg)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 64, generator=g, dtype=torch.float64), torch.randn(1, 1, 64, generator=g, dtype=torch.float64)

    def at(x, pos):
        a = torch.tensor([float(pos)], dtype=torch.float64)[:, None] * inv[None, :]
        a = torch.cat((a, a), -1)
        return tr.apply_rope(x, a.cos(), a.sin())

    d1 = float((at(q, 7) * at(k, 3)).sum())
    d2 = float((at(q, 107) * at(k, 103)).sum())
    assert abs(d1 - d2) < 1e-10, (d1, d2)
    # and rotate_half pairs element i with i + D/2
    x = torch.zeros(1, 1, 64, dtype=torch.float64)
    x[..., 0] = 1.0
    y = at(x, 1)
    assert abs(float(y[0, 0, 32]) - math.sin(1.0)) < 1e-14 and abs(float(y[0, 0, 0]) - math.cos(1.0)) < 1e-14
    return "q.k invariant under position shift; pair (0, 32) rotated by pos*theta^0"


def check_cli_json(ctx):
    d = ctx.model(ARCH_ARGS["qwen2"], seed=12)
    ids = ids_for(30, 600, 9)
    p = subprocess.run([PY, os.path.join(HERE, "torch_reference.py"), "--model", d, "--token-ids",
                        ",".join(map(str, ids)), "--top", "7"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    ok, summary, problems = compare_score.check(out, tr.Reference(d).logprobs(ids), ids, 7, "f32")
    assert ok, problems[:3]
    assert list(out[0].keys()) == ["position", "next_id", "next_logprob", "top"], list(out[0].keys())
    assert list(out[-1].keys()) == ["position", "top"], list(out[-1].keys())
    tot = sum(math.exp(lp) for _, lp in out[5]["top"])
    assert 0 < tot <= 1.0 + 1e-12
    lp_all = tr.Reference(d).logprobs(ids)
    assert np.abs(np.exp(lp_all).sum(1) - 1).max() < 1e-12
    return "CLI JSON shape; " + summary


def check_bad_input(ctx):
    d = ctx.model(ARCH_ARGS["llama"], seed=13)
    st = os.path.join(d, "model.safetensors")
    raw = open(st, "rb").read()
    (hl,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + hl])
    cases = {}

    def expect_error(label, contains):
        try:
            tr.Reference(bad)
        except tr.ReferenceError as e:
            assert contains in str(e), f"{label}: message {e!s} lacks {contains!r}"
            cases[label] = str(e)
            return
        raise AssertionError(f"{label}: no error")

    bad = os.path.join(ctx.workdir, "bad")

    def put(data, config=None):
        shutil.rmtree(bad, ignore_errors=True)
        os.makedirs(bad)
        shutil.copy(os.path.join(d, "config.json"), os.path.join(bad, "config.json"))
        if config is not None:
            with open(os.path.join(bad, "config.json"), "w") as f:
                json.dump(config, f)
        with open(os.path.join(bad, "model.safetensors"), "wb") as f:
            f.write(data)

    def with_header(h):
        hj = json.dumps(h).encode()
        return struct.pack("<Q", len(hj)) + hj + raw[8 + hl :]

    put(raw[: len(raw) - 100])
    expect_error("truncated", "outside data")
    put(raw[:4])
    expect_error("tiny", "too short")
    put(struct.pack("<Q", 10**12) + raw[8:])
    expect_error("header length", "exceeds")
    h = json.loads(json.dumps(header))
    h["model.norm.weight"]["data_offsets"][1] += 4
    put(with_header(h))
    expect_error("lying offsets", "model.norm.weight")
    h = json.loads(json.dumps(header))
    h["model.norm.weight"]["dtype"] = "I8"
    put(with_header(h))
    expect_error("unknown dtype", "unsupported dtype")
    h = json.loads(json.dumps(header))
    h["model.norm.weight"]["shape"] = [h["model.norm.weight"]["shape"][0] // 2, 2]
    put(with_header(h))
    expect_error("wrong shape", "model.norm.weight")
    h = json.loads(json.dumps(header))
    del h["model.layers.1.mlp.up_proj.weight"]
    put(with_header(h))
    expect_error("missing tensor", "model.layers.1.mlp.up_proj.weight")
    cfg = json.load(open(os.path.join(d, "config.json")))
    put(raw, dict(cfg, architectures=["MistralForCausalLM"]))
    expect_error("unknown arch", "MistralForCausalLM")
    put(raw, {k: v for k, v in cfg.items() if k != "intermediate_size"})
    expect_error("missing field", "intermediate_size")
    ref = tr.Reference(d)
    try:
        ref.logprobs([1, 600])
        raise AssertionError("id outside vocab accepted")
    except tr.ReferenceError:
        pass
    return f"{len(cases) + 1} bad inputs rejected with named file/tensor/field"


def check_harness_catches_bugs(ctx):
    d = ctx.model("--arch qwen2 --layers 2 --hidden 128 --heads 4 --kv-heads 2 --vocab 600", seed=14)
    ids = ids_for(120, 600, 10)
    ref = tr.Reference(d)
    fake = os.path.join(HERE, "fake_tidal.py")
    results = {}
    for bug, mode, want in (("", "f32", True), ("", "bf16", True), ("gqa_tile", "f32", False),
                            ("rope_interleaved", "f32", False), ("rope_interleaved", "bf16", False),
                            ("logprob_offset", "f32", False), ("top1_swap", "bf16", False)):
        os.environ["TIDAL_FAKE_BUG"] = bug
        try:
            ok, summary, _ = compare_score.compare(fake, d, ids, 5, mode, reference=ref)
        finally:
            del os.environ["TIDAL_FAKE_BUG"]
        assert ok == want, f"bug {bug or 'none'} mode {mode}: ok={ok}: {summary}"
        results[f"{bug or 'clean'}/{mode}"] = ok
    return "clean passes, gqa_tile/rope_interleaved/logprob_offset/top1_swap caught"


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=None, help="default: a temporary folder, removed afterwards")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    workdir = a.workdir or tempfile.mkdtemp(prefix="tidal-ref-selftest-")
    os.makedirs(workdir, exist_ok=True)
    ctx = Ctx(workdir)
    checks = []
    for key in ARCH_ARGS:
        checks.append((f"numpy token-by-token decode == torch [{key}]", lambda k=key: check_matches_numpy_decode(ctx, k)))
    for key in ("llama", "qwen2", "qwen3"):
        checks.append((f"prefix log-probs unchanged by appending [{key}]", lambda k=key: check_prefix(ctx, k)))
        checks.append((f"float32 vs float64 <= 1e-4 [{key}]", lambda k=key: check_f32_vs_f64(ctx, k)))
        checks.append((f"GQA == MHA with repeated kv weights [{key}]", lambda k=key: check_gqa_expand(ctx, k)))
    for key in ("llama-bias", "qwen2", "qwen3"):
        checks.append((f"every tensor affects the output [{key}]", lambda k=key: check_every_tensor_matters(ctx, k)))
    checks += [
        ("tied == untied with copied lm_head", lambda: check_tied_untied(ctx)),
        ("sharded load == single file", lambda: check_sharded(ctx)),
        ("F32/F16/BF16 codecs", lambda: check_dtype_codecs(ctx)),
        ("llama3 rope scaling", lambda: check_llama3_scaling(ctx)),
        ("RoPE convention", lambda: check_rope_relative(ctx)),
        ("CLI JSON contract", lambda: check_cli_json(ctx)),
        ("bad input rejected", lambda: check_bad_input(ctx)),
        ("compare_score catches injected bugs", lambda: check_harness_catches_bugs(ctx)),
    ]
    passed = failed = 0
    try:
        for name, fn in checks:
            try:
                detail = fn()
                passed += 1
                print(f"PASS {name}: {detail}", flush=True)
            except Exception as e:  # noqa: BLE001 - report and continue
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
                if a.verbose:
                    traceback.print_exc()
    finally:
        if not a.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
