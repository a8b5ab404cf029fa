#!/usr/bin/env bash
# Quantized decode / prefill speed: Tidal's formats vs llama.cpp's Q8_0 and Q4_0, same weights,
# same run, next to the memory-bandwidth roofline measured in the same run.
#
# usage: bench/compare_quant_llama_cpp.sh [MODEL_DIR]   (default $ANCHORS/models/1b-bf16)
#   MODEL_DIR holds hf/ (Tidal) and model-bf16.gguf; model-q8_0.gguf / model-q4_0.gguf are made
#   with llama-quantize when missing.
# Env: THREADS (2), ROUNDS (3), REPS (3), PP (256), TG (64),
#      FORMATS ("int8 w8a8 fp8 nvfp4 mxfp4 nvfp4:a8 mxfp4:a8"; "bf16" = Tidal as stored),
#      EXCLUDE (unset: Tidal's default lm_head,embed_tokens; e.g. "embed_tokens" also quantizes lm_head),
#      FREEZE=1: run each measurement with /work/freeze.sh stop ... cont around it (pauses other
#      sessions' compilers on a shared machine; always resumed, also on failure or Ctrl-C).
# The sides run interleaved, ROUNDS times (llama Q8_0, llama Q4_0, then each Tidal format, and a
# 2-thread streaming read); the table gives medians over rounds of each run's median and the
# ratio Tidal / llama.cpp. Roofline: % = tok/s x bytes read per token / read bandwidth, where bytes
# per token are the weight matrices one decode step reads (Tidal: matrix_bytes_per_token; llama:
# the GGUF's tensors minus token_embd, which is only gathered). KV and activations are not counted.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ANCHORS=${ANCHORS:-${TMPDIR:-/tmp}/anchors}
shared=${TIDAL_SHARED:-$root/../shared}
model=${1:-$ANCHORS/models/1b-bf16}
threads=${THREADS:-2}; rounds=${ROUNDS:-3}; reps=${REPS:-3}; pp=${PP:-256}; tg=${TG:-64}
formats=${FORMATS:-int8 w8a8 fp8 nvfp4 mxfp4 nvfp4:a8 mxfp4:a8}
tidal=$root/build/release/tools/tidal/tidal
bin=$ANCHORS/llama.cpp/build/bin
out=${OUT:-$(mktemp -d /tmp/compare_quant.XXXXXX)}
[ -x "$tidal" ] || { echo "build Tidal first: ./scripts/build.sh release" >&2; exit 1; }
[ -x "$bin/llama-bench" ] || { echo "build llama.cpp first: $shared/anchors/build-llama-cpp.sh" >&2; exit 1; }
[ -d "$model/hf" ] || { echo "no $model/hf" >&2; exit 1; }
base=
for b in "$model"/model-bf16.gguf "$model"/model-f16.gguf; do [ -f "$b" ] && { base=$b; break; }; done
for q in q8_0 q4_0; do
  if [ ! -f "$model/model-$q.gguf" ]; then
    # (absolute paths: llama-quantize reads an argument starting with a digit as a type number)
    nice "$bin/llama-quantize" "$(realpath "$base")" "$(realpath "$model")/model-$q.gguf" "${q^^}" "$threads" >"$out/quantize-$q.log" 2>&1
  fi
done
stream=$out/stream
gcc -O3 -march=native -fopenmp "$shared/anchors/stream.c" -o "$stream"

freeze() { [ "${FREEZE:-0}" = 1 ] && /work/freeze.sh "$1" || true; }
trap 'freeze cont' EXIT INT TERM
run() {  # run CMD...: one measurement inside a quiet window when FREEZE=1
  freeze stop
  "$@" || { freeze cont; return 1; }
  freeze cont
}
excl=(); [ -n "${EXCLUDE:-}" ] && excl=(--quantization-exclude "$EXCLUDE")

echo "date: $(date -u '+%F %H:%M UTC')  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores" \
     " threads: $threads  rounds: $rounds x reps $reps  pp$pp tg$tg  load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$rounds"); do
  for q in q8_0 q4_0; do
    run "$bin/llama-bench" -m "$model/model-$q.gguf" -t "$threads" -p "$pp" -n "$tg" -r "$reps" -o json \
      >"$out/llama-$q-$r.json" 2>/dev/null
  done
  for f in $formats; do
    qf=(--quantization "$f"); [ "$f" = bf16 ] && qf=()
    [ "$f" = bf16 ] || qf+=("${excl[@]}")
    run "$tidal" bench --model "$model/hf" --prompt-tokens "$pp" --gen-tokens "$tg" --reps "$reps" \
      --threads "$threads" --json "${qf[@]}" >"$out/tidal-$f-$r.json"
  done
  OMP_NUM_THREADS=$threads run "$stream" 50000000 >"$out/stream-$r.txt"
  echo "round $r done, load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done

PYTHONPATH=$ANCHORS/llama.cpp/gguf-py /usr/bin/python3 - "$out" "$model" "$rounds" "$formats" <<'PY'
import glob, json, statistics, sys
out, model, rounds, formats = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
med = statistics.median
bw = med(float(l.split()[1]) for r in range(1, rounds + 1)
         for l in open(f"{out}/stream-{r}.txt") if l.startswith("read(sum)"))  # GB/s (1e9)

def llama_bytes(q):
    from gguf import GGUFReader
    rd = GGUFReader(f"{model}/model-{q}.gguf")
    return sum(int(t.n_bytes) for t in rd.tensors if t.name != "token_embd.weight")

rows = {}  # (side, format, test) -> [per-round medians], bytes per token
for q in ("q8_0", "q4_0"):
    nb = llama_bytes(q)
    for r in range(1, rounds + 1):
        for e in json.load(open(f"{out}/llama-{q}-{r}.json")):
            test = f"pp{e['n_prompt']}" if e["n_gen"] == 0 else f"tg{e['n_gen']}"
            rows.setdefault(("llama.cpp", q.upper(), test), ([], nb))[0].append(med(e["samples_ts"]))
for f in formats:
    for r in range(1, rounds + 1):
        for e in json.load(open(f"{out}/tidal-{f}-{r}.json")):
            rows.setdefault(("tidal", f, e["test"]), ([], e["matrix_bytes_per_token"]))[0].append(e["tokens_per_second"])

print(f"read bandwidth ({len(glob.glob(out + '/stream-*.txt'))}-round median, 2 threads): {bw:.1f} GB/s")
print("| side | weights | MiB/token | test | tok/s (median) | rounds | % of roofline (tg) | vs Q8_0 | vs Q4_0 |")
print("|---|---|---|---|---|---|---|---|---|")
for (side, f, test), (v, nb) in sorted(rows.items(), key=lambda kv: (kv[0][2], kv[0][0] != "llama.cpp", kv[0][1])):
    m = med(v)
    roof = f"{100 * m * nb / (bw * 1e9):.0f}%" if test.startswith("tg") else ""
    ratios = []
    for q in ("Q8_0", "Q4_0"):
        ref = rows.get(("llama.cpp", q, test))
        ratios.append(f"{m / med(ref[0]):.2f}x" if ref and side == "tidal" else "")
    print(f"| {side} | {f} | {nb / 2**20:.0f} | {test} | {m:.2f} | {' / '.join(f'{x:.1f}' for x in v)} | {roof} | {ratios[0]} | {ratios[1]} |")
print(f"(raw results: {out})")
PY
