#!/usr/bin/python3
"""Writes a random-weight model as a Hugging Face fine-grained FP8 checkpoint (the DeepSeek-V3 /
Qwen3-FP8 layout) plus its dequantized twin, with numpy only (no Tidal code, no torch):

    OUT/fp8/    config.json with quantization_config {"quant_method": "fp8", "fmt": "e4m3",
                "weight_block_size": [B, B]} (omitted with --block 0: one scale per tensor);
                every q/k/v/o/gate/up/down matrix as F8_E4M3 (or F8_E5M2) codes plus
                X.weight_scale_inv (F32 or BF16) on the block grid; embeddings, lm_head, norms
                and biases as F32.
    OUT/dense/  the same model with every matrix replaced by code_value * scale_inv (float64
                product, stored F32): what the PyTorch reference scores.

    /usr/bin/python3 tests/reference/make_fp8_checkpoint.py OUT [--block 128] [--fmt e4m3|e5m2]
        [--scale-dtype f32|bf16] [make_test_model.py arguments: --arch --layers --hidden ...]

Encoding (round to nearest, ties to the even code, saturating at the largest finite value) is
done by nearest-value search over a table of every code's value, built from the bit fields.
"""

import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_test_model  # noqa: E402

MATRICES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def code_values(fmt):
    """Values of the non-negative finite codes 0x00.. in increasing order (codes are monotonic)."""
    e_bits, m_bits, bias = (4, 3, 7) if fmt == "e4m3" else (5, 2, 15)
    vals = []
    for c in range(128):
        e, m = c >> m_bits, c & ((1 << m_bits) - 1)
        if fmt == "e4m3" and c == 0x7F:
            break  # NaN
        if fmt == "e5m2" and e == (1 << e_bits) - 1:
            break  # inf / NaN
        if e == 0:
            v = m / (1 << m_bits) * 2.0 ** (1 - bias)
        else:
            v = (1 + m / (1 << m_bits)) * 2.0 ** (e - bias)
        vals.append(v)
    return np.array(vals, dtype=np.float64)


def encode(x, table):
    """x float64 array -> uint8 codes (RNE on the value grid, saturating)."""
    a = np.minimum(np.abs(x), table[-1])
    hi = np.clip(np.searchsorted(table, a), 1, len(table) - 1)
    lo = hi - 1
    dlo, dhi = a - table[lo], table[hi] - a
    pick_hi = (dhi < dlo) | ((dhi == dlo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    code[a == 0] = 0
    return code | np.where(x < 0, 0x80, 0).astype(np.uint8)


def decode(code, table):
    v = table[code & 0x7F]
    return np.where(code & 0x80, -v, v)


def bf16_round(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def quantize(w, block, fmt, scale_dtype):
    """Returns (codes uint8 [n, k], scale_inv grid float32/uint16 bits, dequantized float64)."""
    table = code_values(fmt)
    fmax = table[-1]
    n, k = w.shape
    br, bc = (block, block) if block > 0 else (n, k)
    gr, gc = -(-n // br), -(-k // bc)
    scales = np.zeros((gr, gc), dtype=np.float64)
    codes = np.zeros((n, k), dtype=np.uint8)
    deq = np.zeros((n, k), dtype=np.float64)
    w = w.astype(np.float64)
    for i in range(gr):
        for j in range(gc):
            blk = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc]
            s = np.abs(blk).max() / fmax
            if scale_dtype == "bf16":
                bits = bf16_round(np.array([s], dtype=np.float32))
                s = float((bits.astype(np.uint32) << 16).view(np.float32)[0])
            else:
                s = float(np.float32(s))
            scales[i, j] = s
            c = encode(blk / s if s > 0 else blk * 0, table)
            codes[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = c
            deq[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = decode(c, table) * s
    if scale_dtype == "bf16":
        grid = bf16_round(scales.astype(np.float32))
    else:
        grid = scales.astype(np.float32)
    return codes, grid, deq


def write_safetensors(path, entries):
    """entries: list of (name, dtype string, shape, bytes)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, dtype, shape, b in sorted(entries, key=lambda e: e[0]):
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    block, fmt, scale_dtype = 128, "e4m3", "f32"
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] in ("--block", "--fmt", "--scale-dtype"):
            v = argv[i + 1]
            if argv[i] == "--block":
                block = int(v)
            elif argv[i] == "--fmt":
                fmt = v
            else:
                scale_dtype = v
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    a = make_test_model.parse_args(rest + ["--dtype", "f32"])
    out = a.out
    tensors = make_test_model.make_tensors(a)
    config = make_test_model.make_config(a)
    fp8_entries, dense_entries = [], []
    st_fmt = "F8_E4M3" if fmt == "e4m3" else "F8_E5M2"
    for name, arr in tensors:
        is_matrix = name.endswith(".weight") and any("." + m + "." in name for m in MATRICES)
        if not is_matrix:
            b = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
            fp8_entries.append((name, "F32", arr.shape, b))
            dense_entries.append((name, "F32", arr.shape, b))
            continue
        codes, grid, deq = quantize(arr, block, fmt, scale_dtype)
        fp8_entries.append((name, st_fmt, codes.shape, codes.tobytes()))
        sname = name[: -len("weight")] + "weight_scale_inv"
        fp8_entries.append((sname, "BF16" if scale_dtype == "bf16" else "F32", grid.shape, grid.tobytes()))
        dense_entries.append((name, "F32", arr.shape, deq.astype(np.float32).tobytes()))
    for sub, entries, cfg in (
        ("fp8", fp8_entries, dict(config, quantization_config=dict(
            {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": fmt},
            **({"weight_block_size": [block, block]} if block > 0 else {})))),
        ("dense", dense_entries, config),
    ):
        d = os.path.join(out, sub)
        os.makedirs(d, exist_ok=True)
        write_safetensors(os.path.join(d, "model.safetensors"), entries)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
