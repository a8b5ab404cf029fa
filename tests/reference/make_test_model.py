#!/usr/bin/python3
"""Writes a random-weight Hugging Face model folder (config.json + safetensors), independently
of Tidal, so Tidal's loader is also tested on files it did not write. numpy only.

    /usr/bin/python3 tests/reference/make_test_model.py --arch qwen3 --layers 2 --hidden 256 \
        --intermediate 704 --heads 8 --kv-heads 2 --head-dim 64 --vocab 2000 [--tie] \
        [--dtype f32|f16|bf16] [--rope-theta 1e6] [--llama3-rope FACTOR,LOW,HIGH,ORIG] \
        [--attention-bias] [--shards N] [--seed S] OUT_DIR

Initialisation (chosen so attention is not uniform and logits are not degenerate; the
N(0, 0.02) of HF would give near-uniform outputs at these sizes):
  embed_tokens, lm_head   N(0, (logit_scale / sqrt(hidden))^2)   -> logit std ~ logit_scale
  q/k/v/gate/up           N(0, 1 / hidden)
  o_proj                  N(0, 1 / (heads * head_dim));  down_proj N(0, 1 / intermediate)
  norm weights            N(1, 0.1^2);  biases N(0, 0.2^2)
Stored dtypes: F32, F16 (IEEE round-to-nearest-even via numpy), BF16 (round-to-nearest-even
from float32). Header keys are sorted, data is laid out in a different (generation) order, the
header is padded with spaces to a multiple of 8 bytes, and "__metadata__" = {"format": "pt"}.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

ARCH = {
    "llama": ("LlamaForCausalLM", "llama"),
    "qwen2": ("Qwen2ForCausalLM", "qwen2"),
    "qwen3": ("Qwen3ForCausalLM", "qwen3"),
}
TORCH_DTYPE = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
ST_DTYPE = {"f32": "F32", "f16": "F16", "bf16": "BF16"}


def f32_to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((u >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
    return ((u + rounding) >> np.uint32(16)).astype(np.uint16)


def encode(arr, dtype):
    a = np.asarray(arr, dtype=np.float32)
    if dtype == "f32":
        return a.astype("<f4").tobytes()
    if dtype == "f16":
        return a.astype("<f2").tobytes()
    return f32_to_bf16_bits(a).astype("<u2").tobytes()


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, float32 array) in data order."""
    blobs, header, offset = [], {}, 0
    for name, arr in tensors:
        b = encode(arr, dtype)
        header[name] = {"dtype": ST_DTYPE[dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    ordered = {"__metadata__": {"format": "pt"}}
    ordered.update({k: header[k] for k in sorted(header)})
    hj = json.dumps(ordered, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    return offset


def make_tensors(a):
    rng = np.random.default_rng(a.seed)
    E, F, H, KV, D, V = a.hidden, a.intermediate, a.heads, a.kv_heads, a.head_dim, a.vocab

    def normal(shape, std, mean=0.0):
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    qkv_bias = a.arch == "qwen2" or a.attention_bias
    o_bias = a.arch != "qwen2" and a.attention_bias
    t = [("model.embed_tokens.weight", normal([V, E], a.logit_scale / np.sqrt(E)))]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        t.append((p + "input_layernorm.weight", normal([E], 0.1, 1.0)))
        t.append((p + "self_attn.q_proj.weight", normal([H * D, E], 1 / np.sqrt(E))))
        t.append((p + "self_attn.k_proj.weight", normal([KV * D, E], 1 / np.sqrt(E))))
        t.append((p + "self_attn.v_proj.weight", normal([KV * D, E], 1 / np.sqrt(E))))
        if qkv_bias:
            t.append((p + "self_attn.q_proj.bias", normal([H * D], 0.2)))
            t.append((p + "self_attn.k_proj.bias", normal([KV * D], 0.2)))
            t.append((p + "self_attn.v_proj.bias", normal([KV * D], 0.2)))
        if a.arch == "qwen3":
            t.append((p + "self_attn.q_norm.weight", normal([D], 0.1, 1.0)))
            t.append((p + "self_attn.k_norm.weight", normal([D], 0.1, 1.0)))
        t.append((p + "self_attn.o_proj.weight", normal([E, H * D], 1 / np.sqrt(H * D))))
        if o_bias:
            t.append((p + "self_attn.o_proj.bias", normal([E], 0.2)))
        t.append((p + "post_attention_layernorm.weight", normal([E], 0.1, 1.0)))
        t.append((p + "mlp.gate_proj.weight", normal([F, E], 1 / np.sqrt(E))))
        t.append((p + "mlp.up_proj.weight", normal([F, E], 1 / np.sqrt(E))))
        t.append((p + "mlp.down_proj.weight", normal([E, F], 1 / np.sqrt(F))))
    t.append(("model.norm.weight", normal([E], 0.1, 1.0)))
    if not a.tie:
        t.append(("lm_head.weight", normal([V, E], a.logit_scale / np.sqrt(E))))
    return t


def make_config(a):
    arch, model_type = ARCH[a.arch]
    c = {
        "architectures": [arch],
        "model_type": model_type,
        "hidden_size": a.hidden,
        "intermediate_size": a.intermediate,
        "num_hidden_layers": a.layers,
        "num_attention_heads": a.heads,
        "num_key_value_heads": a.kv_heads,
        "vocab_size": a.vocab,
        "hidden_act": "silu",
        "max_position_embeddings": a.max_position_embeddings,
        "rms_norm_eps": a.eps,
        "rope_theta": a.rope_theta,
        "rope_scaling": None,
        "tie_word_embeddings": bool(a.tie),
        "torch_dtype": TORCH_DTYPE[a.dtype],
        "bos_token_id": 1,
        "eos_token_id": 2,
        "initializer_range": 0.02,
        "use_cache": True,
    }
    if a.arch == "qwen3" or a.head_dim_explicit:
        c["head_dim"] = a.head_dim
    if a.arch in ("llama", "qwen3"):
        c["attention_bias"] = bool(a.attention_bias)
        c["attention_dropout"] = 0.0
    if a.arch == "llama":
        c["mlp_bias"] = False
    if a.arch in ("qwen2", "qwen3"):
        c["use_sliding_window"] = False
        c["sliding_window"] = None
        c["max_window_layers"] = a.layers
    if a.llama3_rope:
        factor, low, high, orig = a.llama3_rope.split(",")
        c["rope_scaling"] = {
            "rope_type": "llama3",
            "factor": float(factor),
            "low_freq_factor": float(low),
            "high_freq_factor": float(high),
            "original_max_position_embeddings": int(orig),
        }
    return c


def write_model(a):
    os.makedirs(a.out, exist_ok=True)
    for f in os.listdir(a.out):  # stale files from a previous run would confuse loaders
        if f.endswith(".safetensors") or f in ("model.safetensors.index.json", "config.json"):
            os.remove(os.path.join(a.out, f))
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(make_config(a), f, indent=2)
        f.write("\n")
    tensors = make_tensors(a)
    if a.shards <= 1:
        write_safetensors(os.path.join(a.out, "model.safetensors"), tensors, a.dtype)
        return
    # split in data order into shards of about equal size
    sizes = [t[1].size for t in tensors]
    total, target = sum(sizes), sum(sizes) / a.shards
    groups, cur, acc = [], [], 0
    for t, s in zip(tensors, sizes):
        cur.append(t)
        acc += s
        if acc >= target * (len(groups) + 1) and len(groups) < a.shards - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    while len(groups) < a.shards:  # more shards than natural breaks: move single tensors
        big = max(range(len(groups)), key=lambda g: len(groups[g]))
        groups.insert(big + 1, [groups[big].pop()])
    n = len(groups)
    weight_map, total_bytes = {}, 0
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        total_bytes += write_safetensors(os.path.join(a.out, fname), g, a.dtype)
        for name, _ in g:
            weight_map[name] = fname
    index = {"metadata": {"total_size": total_bytes}, "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Write a random-weight HF model folder.")
    ap.add_argument("out")
    ap.add_argument("--arch", choices=sorted(ARCH), default="llama")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=None, help="default: about 2.75 x hidden")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=None, help="default: heads")
    ap.add_argument("--head-dim", type=int, default=None, help="default: hidden / heads (always written for qwen3)")
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--tie", action="store_true", help="tie_word_embeddings: no lm_head.weight")
    ap.add_argument("--dtype", choices=sorted(TORCH_DTYPE), default="f32")
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--llama3-rope", default=None, metavar="FACTOR,LOW,HIGH,ORIG",
                    help="rope_scaling llama3, e.g. 8,1,4,8192")
    ap.add_argument("--attention-bias", action="store_true", help="llama/qwen3: biases on q,k,v,o")
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--max-position-embeddings", type=int, default=4096)
    ap.add_argument("--logit-scale", type=float, default=2.0)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.kv_heads is None:
        a.kv_heads = a.heads
    a.head_dim_explicit = a.head_dim is not None
    if a.head_dim is None:
        a.head_dim = a.hidden // a.heads
    if a.intermediate is None:
        a.intermediate = (a.hidden * 11 // 4 + 31) // 32 * 32
    if a.heads % a.kv_heads:
        ap.error("--heads must be a multiple of --kv-heads")
    if a.arch == "qwen2" and a.attention_bias:
        ap.error("--attention-bias: qwen2 always has q/k/v biases and no o bias")
    return a


def main(argv=None):
    write_model(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
