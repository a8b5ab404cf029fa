#!/usr/bin/env bash
# usage: cli_test.sh TIDAL_BINARY WORKDIR
# Every bad input must exit non-zero with ONE line on stderr naming the file, tensor or field.
set -u
tidal=$1
work=$2
rm -rf "$work"; mkdir -p "$work"
pass=0; fail=0
py=/usr/bin/python3

ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# expect_error NAME PATTERN CMD...: non-zero exit, exactly one stderr line, containing PATTERN.
expect_error() {
  local name=$1 pattern=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  local lines
  lines=$(printf '%s' "$err" | grep -c '')
  if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && printf '%s' "$err" | grep -qF -- "$pattern"; then
    ok "$name"
  else
    bad "$name (rc=$rc, $lines lines): $err"
  fi
}

m=$work/model
"$tidal" model init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab 400 --dtype f32 "$m" 2>/dev/null \
  && ok "model init" || bad "model init"

# score --json: the documented shape.
out=$("$tidal" score --model "$m" --token-ids 5,6,7 --top 3 --json)
if $py - "$out" <<'PY'
import json, math, sys
a = json.loads(sys.argv[1])
assert len(a) == 3
for i, e in enumerate(a):
    assert e["position"] == i
    assert len(e["top"]) == 3
    lps = [lp for _, lp in e["top"]]
    assert lps == sorted(lps, reverse=True)
    if i < 2:
        assert e["next_id"] == [5, 6, 7][i + 1] and e["next_logprob"] <= 0
    else:
        assert "next_id" not in e and "next_logprob" not in e
PY
then ok "score --json shape"; else bad "score --json shape: $out"; fi

# Probabilities over the full vocabulary sum to 1: logsumexp of top-V is 0.
out=$("$tidal" score --model "$m" --token-ids 9 --top 400 --json)
if $py -c "import json,math,sys; a=json.loads(sys.argv[1]); s=sum(math.exp(lp) for _,lp in a[0]['top']); assert abs(s-1)<1e-4, s" "$out"; then
  ok "score normalised"; else bad "score normalised"; fi

# generate --json is deterministic for a seed and greedy at T=0 equals argmax of score.
g1=$("$tidal" generate --model "$m" --prompt "abc" --max-tokens 6 --temperature 0.9 --seed 7 --json)
g2=$("$tidal" generate --model "$m" --prompt "abc" --max-tokens 6 --temperature 0.9 --seed 7 --json)
strip_t() { $py -c "import json,sys; j=json.loads(sys.argv[1]); print(j['ids'], j['text'], j['logprobs'])" "$1"; }
[ "$(strip_t "$g1")" = "$(strip_t "$g2")" ] && ok "generate seeded determinism" || bad "generate seeded determinism"
g=$("$tidal" generate --model "$m" --token-ids 1,2,3 --max-tokens 1 --json --ignore-eos)
s=$("$tidal" score --model "$m" --token-ids 1,2,3 --top 1 --json)
if $py -c "import json,sys; g=json.loads(sys.argv[1]); s=json.loads(sys.argv[2]); assert g['ids'][0]==s[-1]['top'][0][0]; assert abs(g['logprobs'][0]-s[-1]['top'][0][1])<1e-5" "$g" "$s"; then
  ok "greedy generate = argmax score"; else bad "greedy generate = argmax score: $g / $s"; fi

# Forced kernel levels agree with the native one.
n=$("$tidal" score --model "$m" --token-ids 3,1,4,1,5 --top 2 --json)
for isa in avx2 scalar; do
  f=$(TIDAL_CPU=$isa "$tidal" score --model "$m" --token-ids 3,1,4,1,5 --top 2 --json 2>/dev/null)
  if $py -c "
import json,sys
a,b=json.loads(sys.argv[1]),json.loads(sys.argv[2])
for x,y in zip(a,b):
    assert [i for i,_ in x['top']]==[i for i,_ in y['top']]
    assert all(abs(p-q)<1e-4 for (_,p),(_,q) in zip(x['top'],y['top']))
" "$n" "$f"; then ok "TIDAL_CPU=$isa agrees"; else bad "TIDAL_CPU=$isa agrees"; fi
done

# ---- bad input ----
expect_error "no such model dir" "nope: no such directory" "$tidal" score --model "$work/nope" --token-ids 1
expect_error "token id out of range" "token id 400 is outside the vocabulary" "$tidal" score --model "$m" --token-ids 1,400
expect_error "malformed id list" "'x' is not a non-negative" "$tidal" score --model "$m" --token-ids 1,x
expect_error "unknown flag" "unknown flag --bogus" "$tidal" score --model "$m" --token-ids 1 --bogus
expect_error "sandbox: bad warm pool" "--warm-pool must be N or NAME=N" "$tidal" sandbox serve --warm-pool x=y

mk() { rm -rf "$work/$1"; cp -r "$m" "$work/$1"; echo "$work/$1"; }
d=$(mk truncated); $py -c "import os,sys; p=sys.argv[1]; os.truncate(p, os.path.getsize(p)-100)" "$d/model.safetensors"
expect_error "truncated safetensors" "model.safetensors: tensor" "$tidal" score --model "$d" --token-ids 1
d=$(mk tiny); printf 'abc' > "$d/model.safetensors"
expect_error "tiny safetensors" "too short for a safetensors header" "$tidal" score --model "$d" --token-ids 1
d=$(mk garbage); $py -c "import struct,sys; open(sys.argv[1],'wb').write(struct.pack('<Q',19)+b'{not json at all!!}')" "$d/model.safetensors"
expect_error "corrupt header" "header is not valid JSON" "$tidal" score --model "$d" --token-ids 1
d=$(mk lying); $py - "$d/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
h['model.norm.weight']['data_offsets'][1] += 4  # lies about its size
t = json.dumps(h).encode()
open(p, 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])
PY
expect_error "header lies about offsets" "tensor 'model.norm.weight'" "$tidal" score --model "$d" --token-ids 1
d=$(mk dtype); $py - "$d/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
h['model.norm.weight']['dtype'] = 'F8_E9M9'
t = json.dumps(h).encode()
open(p, 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])
PY
expect_error "unknown dtype" "unsupported dtype 'F8_E9M9'" "$tidal" score --model "$d" --token-ids 1
d=$(mk arch); sed -i 's/LlamaForCausalLM/GPTNeoXForCausalLM/' "$d/config.json"
expect_error "unknown architecture" "unsupported architecture 'GPTNeoXForCausalLM'" "$tidal" score --model "$d" --token-ids 1
d=$(mk field); $py -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); del c['num_attention_heads']; json.dump(c,open(p,'w'))" "$d/config.json"
expect_error "config missing field" "missing field 'num_attention_heads'" "$tidal" score --model "$d" --token-ids 1
d=$(mk shape); $py -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['intermediate_size']=100; json.dump(c,open(p,'w'))" "$d/config.json"
expect_error "shape mismatch" "has shape [128, 64], the config implies [100, 64]" "$tidal" score --model "$d" --token-ids 1
d=$(mk missing); $py - "$d/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]
b = open(p, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
h['model.layers.1.mlp.up_proj.weightX'] = h.pop('model.layers.1.mlp.up_proj.weight')
t = json.dumps(h).encode()
open(p, 'wb').write(struct.pack('<Q', len(t)) + t + b[8 + n:])
PY
expect_error "missing tensor" "missing tensor 'model.layers.1.mlp.up_proj.weight'" "$tidal" score --model "$d" --token-ids 1
expect_error "generate without tokenizer text" "" "$tidal" generate --model "$work/nope" --prompt hi
expect_error "a flag given twice" "--prompt given 2 times (give it once)" "$tidal" generate --model "$work/nope" --prompt a --prompt b

# tidal rl: bad configs are one-line errors; a tiny run prints the summary as its last stdout line.
if "$tidal" --help | grep -q "^  rl  "; then
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  expect_error "rl: neither config nor --resume" "give either CONFIG.toml or --resume" "$tidal" rl
  expect_error "rl: bad value" "grpo.lr: must be > 0" "$tidal" rl "$root/examples/count-letters.toml" --set 'grpo.lr=-1'
  expect_error "rl: unknown key" "field 'colour'" "$tidal" rl "$root/examples/count-letters.toml" --set 'grpo.colour=1'
  expect_error "rl: resume nothing" "not a run directory" "$tidal" rl --resume "$work/no-run"
  rm -rf "$work/rl"
  tiny='model.layers=1;model.hidden=32;model.intermediate=64;model.heads=2;model.kv_heads=2;sft.steps=3;sft.batch=4;grpo.steps=2;grpo.prompts=2;grpo.samples=2;eval.instances=4;eval.samples=1;eval.every=0'
  # Two --set flags: both apply (the run lands in run.dir from the second).
  out=$("$tidal" rl "$root/examples/count-letters.toml" --set "$tiny" --set "run.dir=\"$work/rl\"" 2>/dev/null | tail -n 1)
  if $py - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
for k in ("sft_accuracy", "rl_accuracy", "sft_sampled_reward", "rl_sampled_reward",
          "probe_letters_accuracy", "probe_length_accuracy"):
    assert 0 <= r[k] <= 1, k
assert r["wall_s"] > 0
PY
  then ok "rl: summary JSON on the last line"; else bad "rl: summary JSON: $out"; fi
  [ -s "$work/rl/curve.svg" ] && [ -s "$work/rl/metrics.jsonl" ] && ok "rl: curve and metrics" || bad "rl: outputs missing"
  expect_error "rl: refuses to overwrite a run" "pass --resume" "$tidal" rl "$root/examples/count-letters.toml" --set "$tiny;run.dir=\"$work/rl\""
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
