#!/usr/bin/env python3
"""Relative weight error of Tidal's encodings next to llama.cpp's Q8_0 / Q4_0, on Gaussian weights.

usage: /usr/bin/python3 bench/quant_weight_mse.py   (needs numpy; deterministic, a few seconds)

Explains bench/quant_accuracy_llama_cpp.sh's KL figures from the weight side: for random
(Gaussian) weights, the KL a format adds is roughly proportional to its relative weight MSE
(plus what llama.cpp's int8 activations, quantized token_embd and Q6_K / Q8_0 output add on its side).
The encodings are written here from their definitions (docs/quantization.md; ggml's Q8_0: one F16
scale amax/127 per 32 weights; Q4_0: one F16 scale d = m / -8 per 32 weights, m the weight of largest
magnitude, codes q in 0..15 for (q - 8) * d). "Tidal nvfp4" / "Tidal mxfp4" are the encoders with
their per-block scale search (src/tidal/core/quant_formats/): NVFP4 tries every E4M3 scale code whose
value lies in [0.8 t, 1.75 t], t = amax / (6 g), plus the code above the rule's, MXFP4 the rule's
power of two and the next one up, each keeping the least squared error (ties: the rule's); the
"amax rule" rows are the encoders before the search (ModelOpt's / OCP's rules).
"""
import numpy as np

rng = np.random.default_rng(0)
W = rng.standard_normal((1024, 2048)).astype(np.float32)


def e4m3(x):  # positive x -> nearest FP8 E4M3 value (subnormal step 2^-9, saturating at 448)
    x = np.minimum(x, 448.0)
    e = np.maximum(np.floor(np.log2(np.maximum(x, 2.0**-9))), -6)
    step = 2.0 ** (e - 3)
    return np.round(x / step) * step


E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32)


def e2m1(x):  # nearest FP4 E2M1 value, sign kept
    return np.sign(x) * E2M1[np.abs(np.abs(x)[..., None] - E2M1).argmin(-1)]


def f16(x):
    return x.astype(np.float16).astype(np.float32)


E4M3_VALUES = np.unique(e4m3(np.concatenate([np.arange(8) * 2.0**-9,
                                              ((8 + np.arange(8)) / 8 * 2.0 ** np.arange(-6, 9)[:, None]).ravel()])))
E4M3_VALUES = E4M3_VALUES[E4M3_VALUES <= 448]  # the 127 finite non-negative values, ascending


def nvfp4(W, search=True):
    B = W.reshape(-1, 16)
    g = np.abs(W).max() / (6 * 448)
    t = np.abs(B).max(1) / (6 * g)
    rule = np.searchsorted(E4M3_VALUES, e4m3(t))  # code index of the amax rule's scale

    def deq(idx):
        s = E4M3_VALUES[idx] * g
        safe = np.where(s > 0, s, 1)
        return np.where(s[:, None] > 0, e2m1(B / safe[:, None]) * s[:, None], 0)

    Q = deq(rule)
    if search:
        best = ((Q - B) ** 2).sum(1)
        for d in range(-12, 16):
            idx = np.clip(rule + d, 1, len(E4M3_VALUES) - 1)
            v = E4M3_VALUES[idx]
            ok = (d != 0) & (idx == rule + d) & (((v >= e4m3(0.8 * t)) & (v <= 1.75 * t)) | (d == 1)) & (t > 0)
            Q2 = deq(idx)
            err = np.where(ok, ((Q2 - B) ** 2).sum(1), np.inf)
            Q[err < best] = Q2[err < best]
            best = np.minimum(best, err)
    return Q.reshape(W.shape)


def mxfp4(W, search=True):
    B = W.reshape(-1, 32)
    # E8M0 scale: 2^(floor(log2(amax)) - 2), the OCP MX rule (emax of E2M1 is 2); the search also
    # tries twice that
    s = 2.0 ** (np.floor(np.log2(np.abs(B).max(1))) - 2)
    Q = e2m1(B / s[:, None]) * s[:, None]
    if search:
        Q2 = e2m1(B / (2 * s[:, None])) * (2 * s[:, None])
        better = ((Q2 - B) ** 2).sum(1) < ((Q - B) ** 2).sum(1)
        Q[better] = Q2[better]
    return Q.reshape(W.shape)


def q4_0(W):
    B = W.reshape(-1, 32)
    m = B[np.arange(len(B)), np.abs(B).argmax(1)]
    d = f16(m / -8)
    q = np.clip(np.floor(B / d[:, None] + 8.5), 0, 15)
    return ((q - 8) * d[:, None]).reshape(W.shape)


def int8_blocks(W, n, scale_dtype=np.float32):
    B = W.reshape(-1, n)
    d = (np.abs(B).max(1) / 127).astype(scale_dtype).astype(np.float32)
    return (np.round(B / d[:, None]) * d[:, None]).reshape(W.shape)


def fp8_row(W):
    d = np.abs(W).max(1) / 448
    return np.sign(W) * e4m3(np.abs(W) / d[:, None]) * d[:, None]


rows = [
    ("llama.cpp Q8_0 (32, F16 scale)", lambda W: int8_blocks(W, 32, np.float16)),
    ("Tidal int8 (per row)", lambda W: int8_blocks(W, W.shape[1])),
    ("Tidal int8:block1x32", lambda W: int8_blocks(W, 32)),
    ("Tidal fp8 (E4M3 per row)", fp8_row),
    ("llama.cpp Q4_0 (32, F16 scale)", q4_0),
    ("Tidal nvfp4, amax rule (before the search)", lambda W: nvfp4(W, False)),
    ("Tidal nvfp4 (scale search)", nvfp4),
    ("Tidal mxfp4, amax rule (before the search)", lambda W: mxfp4(W, False)),
    ("Tidal mxfp4 (scale search)", mxfp4),
]
print("| encoding | relative weight MSE | vs Q8_0 / Q4_0 |")
print("|---|---|---|")
mse = {}
for name, f in rows:
    mse[name] = ((f(W) - W) ** 2).mean() / (W**2).mean()
    anchor = "llama.cpp Q8_0 (32, F16 scale)" if "int8" in name or "fp8" in name or "Q8_0" in name else \
        "llama.cpp Q4_0 (32, F16 scale)"
    print("| %s | %.2e | %.2fx |" % (name, mse[name], mse[name] / mse[anchor]))
