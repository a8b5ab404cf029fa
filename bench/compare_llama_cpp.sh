#!/usr/bin/env bash
# Side-by-side CPU benchmark: Tidal vs llama.cpp on the same random weights, in the same run.
# usage: bench/compare_llama_cpp.sh [PRESET...]      (presets of make_model.py: small, 1b; default both)
# Needs: llama.cpp built with ../shared/anchors/build-llama-cpp.sh (under $ANCHORS, default
# ${TMPDIR:-/tmp}/anchors) and a release build of Tidal. Env: THREADS (2), REPS (5), PP (128,512), TG (128).
# Prints one table row per test with both throughputs and the ratio tidal/llama.cpp.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ANCHORS=${ANCHORS:-${TMPDIR:-/tmp}/anchors}
shared=${TIDAL_SHARED:-$root/../shared}
threads=${THREADS:-2}; reps=${REPS:-5}; pp=${PP:-128,512}; tg=${TG:-128}
tidal=$root/build/release/tools/tidal/tidal
bench=$ANCHORS/llama.cpp/build/bin/llama-bench
[ -x "$tidal" ] || { echo "build Tidal first: ./scripts/build.sh release" >&2; exit 1; }
[ -x "$bench" ] || { echo "build llama.cpp first: $shared/anchors/build-llama-cpp.sh <llama.cpp git dir>" >&2; exit 1; }
presets=("$@"); [ ${#presets[@]} -gt 0 ] || presets=(small 1b)

echo "date: $(date -u +%F)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)  threads: $threads  reps: $reps"
"$tidal" version | sed -n 2p
printf '%-7s %-7s %-22s %12s %12s %8s\n' model test tidal-weights "tidal tok/s" "llama tok/s" ratio
for preset in "${presets[@]}"; do
  dir=$ANCHORS/models/$preset
  for dt in f16 bf16; do
    out=$dir-$dt
    if [ ! -f "$out/model-$dt.gguf" ]; then
      PYTHONPATH=$ANCHORS/llama.cpp/gguf-py nice /usr/bin/python3 "$shared/anchors/make_model.py" \
        --preset "$preset" --dtype "$dt" --out "$out" >/dev/null
    fi
  done
  # llama.cpp F16 is the anchor; Tidal runs the F16 folder (same bytes per weight) and the BF16 one.
  llama_json=$("$bench" -m "$dir-f16/model-f16.gguf" -t "$threads" -p "$pp" -n "$tg" -r "$reps" -o json 2>/dev/null)
  for dt in f16 bf16; do
    tidal_json=$("$tidal" bench --model "$dir-$dt/hf" --prompt-tokens "$pp" --gen-tokens "$tg" --reps "$reps" \
      --threads "$threads" --json)
    /usr/bin/python3 - "$preset" "$dt" "$tidal_json" "$llama_json" <<'PY'
import json, sys
preset, dt, t, l = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
lmap = {}
for r in l:
    key = f"pp{r['n_prompt']}" if r['n_gen'] == 0 else f"tg{r['n_gen']}"
    lmap[key] = r['avg_ts']  # llama-bench reports the mean; with -r 5 on a quiet machine ~ median
for r in t:
    ref = lmap.get(r['test'])
    ratio = r['tokens_per_second'] / ref if ref else float('nan')
    print(f"{preset:7s} {r['test']:7s} {dt.upper():22s} {r['tokens_per_second']:12.2f} {ref or 0:12.2f} {ratio:8.2f}")
PY
  done
done
