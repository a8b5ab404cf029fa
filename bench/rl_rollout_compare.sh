#!/usr/bin/env bash
# Rollout generation speed for the RL experiment's model (examples/count-letters.toml: 4 layers,
# width 128, byte vocabulary) at RL batch sizes: Tidal's engine (`tidal bench-engine`, all requests
# in flight at once, F32) next to the same generation in plain PyTorch (bench/torch_rollout.py: a
# batched KV-cache sampler, what an RL prototype does), same machine, same run.
#   bench/rl_rollout_compare.sh            THREADS=2 BATCH=256 PROMPT=24 GEN=16 TIDAL=build/release/tools/tidal/tidal
# Prints both JSON lines and the ratio of generated tokens/s (wall time includes the prefill).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tidal=${TIDAL:-$root/build/release/tools/tidal/tidal}
threads=${THREADS:-2} batch=${BATCH:-256} prompt=${PROMPT:-24} gen=${GEN:-16}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$tidal" model init --arch qwen3 --layers 4 --hidden 128 --intermediate 512 --heads 4 --kv-heads 4 \
  --vocab 259 --dtype f32 --seed 1 "$work/m" >/dev/null
t=$("$tidal" bench-engine --model "$work/m" --concurrency "$batch" --requests "$((batch * 3))" --input-len "$prompt" \
  --output-len "$gen" --max-num-seqs "$batch" --max-num-batched-tokens $((batch * prompt)) --threads "$threads" \
  --kv-cache-memory 256MiB --json)
echo "$t"
p=$(/usr/bin/python3 "$root/bench/torch_rollout.py" "$work/m" --batch "$batch" --prompt-len "$prompt" --gen "$gen" \
  --threads "$threads")
echo "$p"
/usr/bin/python3 - "$t" "$p" <<'PY'
import json, sys
t, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"tidal {t['output_tokens_per_second']:.0f} generated tok/s, pytorch {p['generated_tokens_per_s']:.0f}: "
      f"ratio {t['output_tokens_per_second'] / p['generated_tokens_per_s']:.2f}x")
PY
