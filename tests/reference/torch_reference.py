#!/usr/bin/python3
"""Independent PyTorch reference forward pass for Tidal's `score` contract.

Shares no code with Tidal. Reads a Hugging Face model folder (config.json plus
model.safetensors, or shards listed in model.safetensors.index.json), parses the
safetensors format by hand, and runs the Llama / Qwen2 / Qwen3 forward pass in
torch, in float64 by default.

    /usr/bin/python3 tests/reference/torch_reference.py --model DIR \
        --token-ids 1,2,3 --top K [--compute-dtype float64|float32]

prints the same JSON array as `tidal score --model DIR --token-ids ... --top K --json`:
element i is {"position": i, "next_id": ids[i+1], "next_logprob": log p(ids[i+1] | ids[..i]),
"top": [[id, logprob], ...]} (K entries, best first, ties broken by smaller id); the last
element has no next_id / next_logprob. Natural-log softmax over the full vocabulary.

Conventions (exactly Hugging Face's):
  * RMSNorm: y = w * x / sqrt(mean(x^2) + eps), eps = rms_norm_eps.
  * RoPE: "rotate half" (GPT-NeoX style, NOT interleaved pairs). For head_dim D,
    inv_freq[i] = theta^(-2i/D), i < D/2; angle = pos * inv_freq[i] applies to the pair
    (x[i], x[i + D/2]):  x' = x*cos + rotate_half(x)*sin,  rotate_half(x) = [-x2, x1].
    Positions are 0..n-1. rope_scaling type "llama3" (and "linear") adjusts inv_freq.
  * GQA: query head h uses key/value head h // (n_heads / n_kv_heads).
  * Scores scaled by 1/sqrt(head_dim); causal mask.
  * Qwen3: q_norm / k_norm (RMSNorm over head_dim, per head) before RoPE.
  * Qwen2: q/k/v biases (o_proj has none). Llama/Qwen3: biases on q/k/v/o iff attention_bias.
  * MLP: down(silu(gate(x)) * up(x)). lm_head tied to embed_tokens if tie_word_embeddings
    or lm_head.weight is absent.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")


class ReferenceError(Exception):
    """A problem with the model folder or the input; the message names the file/tensor/field."""


# ----------------------------------------------------------------------------------------------
# safetensors, by hand
# ----------------------------------------------------------------------------------------------

_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}


def bf16_bits_to_f32(bits):
    """uint16 array of bfloat16 bit patterns -> float32 array (exact)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def read_safetensors(path, only=None):
    """Returns {name: np.float32 array} for every tensor in the file (or in `only`)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ReferenceError(f"{path}: cannot read: {e.strerror}")
    if len(data) < 8:
        raise ReferenceError(f"{path}: file too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise ReferenceError(f"{path}: header length {header_len} exceeds file size")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReferenceError(f"{path}: header is not valid JSON: {e}")
    if not isinstance(header, dict):
        raise ReferenceError(f"{path}: header is not a JSON object")
    base = 8 + header_len
    n_data = len(data) - base
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if only is not None and name not in only:
            continue
        try:
            dtype = info["dtype"]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ReferenceError(f"{path}: tensor {name}: malformed header entry")
        if dtype not in _ITEMSIZE:
            raise ReferenceError(f"{path}: tensor {name}: unsupported dtype {dtype}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if begin < 0 or end < begin or end > n_data:
            raise ReferenceError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] outside data ({n_data} bytes)")
        if end - begin != count * _ITEMSIZE[dtype]:
            raise ReferenceError(f"{path}: tensor {name}: {end - begin} bytes do not match shape {shape} {dtype}")
        raw = data[base + begin : base + end]
        if dtype == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dtype == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            arr = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
        out[name] = arr.reshape(shape)
    return out


def load_weights(model_dir):
    """All tensors of a model folder as float32 numpy arrays (HF's choice: single file first)."""
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.isfile(single):
        return read_safetensors(single)
    if not os.path.isfile(index):
        raise ReferenceError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")
    try:
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ReferenceError(f"{index}: cannot read weight_map: {e}")
    by_file = {}
    for name, fname in weight_map.items():
        by_file.setdefault(fname, set()).add(name)
    weights = {}
    for fname, names in sorted(by_file.items()):
        path = os.path.join(model_dir, fname)
        got = read_safetensors(path, only=names)
        for name in sorted(names):
            if name not in got:
                raise ReferenceError(f"{path}: tensor {name} listed in the index is missing")
        weights.update(got)
    return weights


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------


class Config:
    def __init__(self, d, path="config.json"):
        def req(key):
            if key not in d or d[key] is None:
                raise ReferenceError(f"{path}: missing field {key}")
            return d[key]

        archs = req("architectures")
        if not isinstance(archs, list) or not archs:
            raise ReferenceError(f"{path}: field architectures must be a non-empty list")
        self.arch = archs[0]
        if self.arch not in ARCHITECTURES:
            raise ReferenceError(f"{path}: unsupported architecture {self.arch}")
        self.hidden = int(req("hidden_size"))
        self.intermediate = int(req("intermediate_size"))
        self.n_layers = int(req("num_hidden_layers"))
        self.n_heads = int(req("num_attention_heads"))
        self.n_kv_heads = int(d.get("num_key_value_heads") or self.n_heads)
        self.vocab = int(req("vocab_size"))
        hd = d.get("head_dim")
        self.head_dim = int(hd) if hd else self.hidden // self.n_heads
        self.eps = float(d.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(d.get("rope_theta", 10000.0))
        self.rope_scaling = d.get("rope_scaling")
        self.tie = bool(d.get("tie_word_embeddings", False))
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ReferenceError(f"{path}: unsupported hidden_act {act}")
        if self.n_heads % self.n_kv_heads != 0:
            raise ReferenceError(f"{path}: num_attention_heads {self.n_heads} not a multiple of num_key_value_heads {self.n_kv_heads}")
        if self.head_dim % 2 != 0:
            raise ReferenceError(f"{path}: head_dim {self.head_dim} must be even")
        attention_bias = bool(d.get("attention_bias", False))
        if self.arch == "Qwen2ForCausalLM":
            self.qkv_bias, self.o_bias = True, False
        else:
            self.qkv_bias, self.o_bias = attention_bias, attention_bias
        self.mlp_bias = self.arch == "LlamaForCausalLM" and bool(d.get("mlp_bias", False))
        self.qk_norm = self.arch == "Qwen3ForCausalLM"
        if d.get("use_sliding_window"):
            print(f"warning: {path}: use_sliding_window ignored (full causal attention)", file=sys.stderr)

    @staticmethod
    def load(model_dir):
        path = os.path.join(model_dir, "config.json")
        try:
            with open(path) as f:
                d = json.load(f)
        except OSError as e:
            raise ReferenceError(f"{path}: cannot read: {e.strerror}")
        except json.JSONDecodeError as e:
            raise ReferenceError(f"{path}: not valid JSON: {e}")
        return Config(d, path)


def rope_inv_freq(cfg):
    """inv_freq [head_dim/2] in float64, with rope_scaling applied exactly as HF does."""
    D = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    rs = cfg.rope_scaling
    if not rs:
        return inv_freq
    rope_type = rs.get("rope_type", rs.get("type", "default"))
    if rope_type == "default":
        return inv_freq
    if rope_type == "linear":
        return inv_freq / float(rs["factor"])
    if rope_type != "llama3":
        raise ReferenceError(f"config.json: unsupported rope_scaling type {rope_type}")
    try:
        factor = float(rs["factor"])
        low_freq_factor = float(rs["low_freq_factor"])
        high_freq_factor = float(rs["high_freq_factor"])
        old_context_len = float(rs["original_max_position_embeddings"])
    except KeyError as e:
        raise ReferenceError(f"config.json: rope_scaling missing field {e.args[0]}")
    # transformers.modeling_rope_utils._compute_llama3_parameters
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


# ----------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    # x [n, heads, D], cos/sin [n, D]
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


class Reference:
    """A loaded model. `logprobs(ids)` -> np.float64 [n, vocab] natural-log softmax."""

    def __init__(self, model_dir, compute_dtype="float64"):
        self.cfg = Config.load(model_dir)
        self.dtype = {"float64": torch.float64, "float32": torch.float32}[compute_dtype]
        raw = load_weights(model_dir)
        self.W = self._collect(raw)

    def _collect(self, raw):
        c = self.cfg
        H, KV, D, E, F, V = c.n_heads, c.n_kv_heads, c.head_dim, c.hidden, c.intermediate, c.vocab
        expected = {"model.embed_tokens.weight": [V, E], "model.norm.weight": [E]}
        for i in range(c.n_layers):
            p = f"model.layers.{i}."
            expected[p + "input_layernorm.weight"] = [E]
            expected[p + "post_attention_layernorm.weight"] = [E]
            expected[p + "self_attn.q_proj.weight"] = [H * D, E]
            expected[p + "self_attn.k_proj.weight"] = [KV * D, E]
            expected[p + "self_attn.v_proj.weight"] = [KV * D, E]
            expected[p + "self_attn.o_proj.weight"] = [E, H * D]
            if c.qkv_bias:
                expected[p + "self_attn.q_proj.bias"] = [H * D]
                expected[p + "self_attn.k_proj.bias"] = [KV * D]
                expected[p + "self_attn.v_proj.bias"] = [KV * D]
            if c.o_bias:
                expected[p + "self_attn.o_proj.bias"] = [E]
            if c.qk_norm:
                expected[p + "self_attn.q_norm.weight"] = [D]
                expected[p + "self_attn.k_norm.weight"] = [D]
            expected[p + "mlp.gate_proj.weight"] = [F, E]
            expected[p + "mlp.up_proj.weight"] = [F, E]
            expected[p + "mlp.down_proj.weight"] = [E, F]
            if c.mlp_bias:
                expected[p + "mlp.gate_proj.bias"] = [F]
                expected[p + "mlp.up_proj.bias"] = [F]
                expected[p + "mlp.down_proj.bias"] = [E]
        self.tied = c.tie or "lm_head.weight" not in raw
        if not self.tied:
            expected["lm_head.weight"] = [V, E]
        W = {}
        for name, shape in expected.items():
            if name not in raw:
                raise ReferenceError(f"tensor {name}: missing")
            if list(raw[name].shape) != shape:
                raise ReferenceError(f"tensor {name}: shape {list(raw[name].shape)}, expected {shape}")
            W[name] = torch.from_numpy(np.ascontiguousarray(raw[name])).to(self.dtype)
        for name in sorted(set(raw) - set(expected)):
            if not (name == "lm_head.weight" and self.tied) and not name.endswith("rotary_emb.inv_freq"):
                print(f"warning: tensor {name} unused", file=sys.stderr)
        W["lm_head.weight"] = W["model.embed_tokens.weight"] if self.tied else W["lm_head.weight"]
        return W

    @staticmethod
    def rope(x, cos, sin):
        return apply_rope(x, cos, sin)

    @staticmethod
    def expand_kv(x, group):
        """[n, KV, D] -> [n, KV * group, D]; query head h reads kv head h // group (HF repeat_kv)."""
        return x.repeat_interleave(group, dim=1)

    def _linear(self, x, name):
        y = x @ self.W[name + ".weight"].T
        b = self.W.get(name + ".bias")
        return y if b is None else y + b

    @torch.no_grad()
    def logits(self, ids):
        c, W = self.cfg, self.W
        ids = list(ids)
        if not ids:
            raise ReferenceError("--token-ids: empty")
        for t in ids:
            if not 0 <= t < c.vocab:
                raise ReferenceError(f"--token-ids: id {t} outside vocabulary [0, {c.vocab})")
        n, H, KV, D = len(ids), c.n_heads, c.n_kv_heads, c.head_dim
        group = H // KV
        x = W["model.embed_tokens.weight"][torch.tensor(ids, dtype=torch.long)]  # [n, E]
        pos = torch.arange(n, dtype=torch.float64)
        angles = pos[:, None] * rope_inv_freq(c)[None, :]  # [n, D/2]
        angles = torch.cat((angles, angles), dim=-1)  # [n, D]
        cos, sin = angles.cos().to(self.dtype), angles.sin().to(self.dtype)
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        for i in range(c.n_layers):
            p = f"model.layers.{i}."
            h = rms_norm(x, W[p + "input_layernorm.weight"], c.eps)
            q = self._linear(h, p + "self_attn.q_proj").view(n, H, D)
            k = self._linear(h, p + "self_attn.k_proj").view(n, KV, D)
            v = self._linear(h, p + "self_attn.v_proj").view(n, KV, D)
            if c.qk_norm:
                q = rms_norm(q, W[p + "self_attn.q_norm.weight"], c.eps)
                k = rms_norm(k, W[p + "self_attn.k_norm.weight"], c.eps)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            k, v = self.expand_kv(k, group), self.expand_kv(v, group)  # [n, H, D]
            scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(D)
            scores = scores.masked_fill(~causal, float("-inf"))
            attn = torch.softmax(scores, dim=-1)
            o = torch.einsum("hqk,khd->qhd", attn, v).reshape(n, H * D)
            x = x + self._linear(o, p + "self_attn.o_proj")
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], c.eps)
            gate = self._linear(h, p + "mlp.gate_proj")
            up = self._linear(h, p + "mlp.up_proj")
            x = x + self._linear(torch.nn.functional.silu(gate) * up, p + "mlp.down_proj")
        x = rms_norm(x, W["model.norm.weight"], c.eps)
        return x @ W["lm_head.weight"].T  # [n, V]

    def logprobs(self, ids):
        lg = self.logits(ids).to(torch.float64)
        return torch.log_softmax(lg, dim=-1).numpy()

    def score(self, ids, top):
        return score_entries(self.logprobs(ids), ids, top)


def score_entries(lp, ids, top):
    """The `tidal score --json` array from a [n, V] log-prob matrix."""
    n, V = lp.shape
    k = max(0, min(int(top), V))
    out = []
    for i in range(n):
        row = lp[i]
        e = {"position": i}
        if i + 1 < n:
            e["next_id"] = int(ids[i + 1])
            e["next_logprob"] = float(row[ids[i + 1]])
        order = np.lexsort((np.arange(V), -row))[:k]  # best first, ties -> smaller id
        e["top"] = [[int(j), float(row[j])] for j in order]
        out.append(e)
    return out


def parse_ids(s):
    try:
        return [int(t) for t in s.split(",") if t.strip() != ""]
    except ValueError:
        raise ReferenceError(f"--token-ids: not a comma-separated list of integers: {s}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--token-ids", required=True)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--compute-dtype", choices=("float32", "float64"), default="float64")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        ref = Reference(args.model, args.compute_dtype)
        ids = parse_ids(args.token_ids)
        print(json.dumps(ref.score(ids, args.top)))
    except ReferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
