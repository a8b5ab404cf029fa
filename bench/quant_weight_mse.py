#!/usr/bin/env python3
"""Relative weight error of Tidal's encodings next to llama.cpp's Q8_0 / Q4_0, on Gaussian weights.

usage: /usr/bin/python3 bench/quant_weight_mse.py   (needs numpy; deterministic, a few seconds)

Explains bench/quant_accuracy_llama_cpp.sh's KL figures from the weight side: for random
(Gaussian) weights, the KL a format adds is roughly proportional to its relative weight MSE
(plus what llama.cpp's int8 activations, quantized token_embd and Q6_K / Q8_0 output add on its side).
The encodings are written here from their definitions (docs/quantization.md; ggml's Q8_0: one F16
scale amax/127 per 32 weights; Q4_0: one F16 scale d = m / -8 per 32 weights, m the weight of largest
magnitude, codes q in 0..15 for (q - 8) * d). "nvfp4, scale search" is a what-if, not what Tidal
does: per block, the E4M3 scale of amax/6, amax/5, amax/4 or +-10% with the least squared error.
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


def nvfp4(W, search=False):
    B = W.reshape(-1, 16)
    g = np.abs(W).max() / (6 * 448)
    amax = np.abs(B).max(1)

    def deq(target):
        s = e4m3(target / (6 * g)) * g
        return e2m1(B / s[:, None]) * s[:, None]

    Q = deq(amax)
    if search:
        best = ((Q - B) ** 2).sum(1)
        for f in (4 / 6, 5 / 6, 0.9, 1.1):
            Q2 = deq(amax * f)
            err = ((Q2 - B) ** 2).sum(1)
            Q[err < best] = Q2[err < best]
            best = np.minimum(best, err)
    return Q.reshape(W.shape)


def mxfp4(W):
    B = W.reshape(-1, 32)
    # E8M0 scale: 2^(floor(log2(amax)) - 2), the OCP MX rule (emax of E2M1 is 2)
    s = 2.0 ** (np.floor(np.log2(np.abs(B).max(1))) - 2)
    return (e2m1(B / s[:, None]) * s[:, None]).reshape(W.shape)


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
    ("Tidal nvfp4", nvfp4),
    ("Tidal mxfp4", mxfp4),
    ("what-if: nvfp4, scale search", lambda W: nvfp4(W, True)),
]
print("| encoding | relative weight MSE |")
print("|---|---|")
for name, f in rows:
    print("| %s | %.2e |" % (name, ((f(W) - W) ** 2).mean() / (W**2).mean()))
