#!/usr/bin/env bash
# bench/serve_compare.sh: `tidal serve` vs `llama-server --parallel N --cont-batching` on the same
# model, same client (bench/serve_load.py), same run; one server at a time on the same cores.
#
#   bench/serve_compare.sh [--model small] [--conc 64] [--rounds 2] [--max-tokens 64] [--threads 2]
#                          [--quant TIDAL_FORMAT:LLAMA_TYPE]
#
# --quant: both servers on quantized weights of the same checkpoint, e.g. w8a8:q8_0 (Tidal
# `--quantization w8a8`, llama-server on model-q8_0.gguf, made with llama-quantize from the F16
# GGUF when missing) or mxfp4:a8:q4_0. Default: both on the F16 weights as stored. Env EXCLUDE:
# Tidal's --quantization-exclude (default: its own, lm_head,embed_tokens; "embed_tokens" also
# quantizes lm_head, as llama-quantize does for Q8_0).
#
# Env: TIDAL (default build/release/tools/tidal/tidal), ANCHORS (default ${TMPDIR:-/tmp}/anchors,
# see ../shared/anchors/README.md: llama.cpp in $ANCHORS/llama.cpp/build/bin, the model as
# $ANCHORS/models/<model>/hf (Tidal) and $ANCHORS/models/<model>/model-f16.gguf (llama.cpp)),
# PYTHON (default /usr/bin/python3).
# Prints each server's JSON result line (aggregate tok/s, server CPU per token; Tidal also reports
# its front-end CPU share from /metrics), then the throughput ratio Tidal / llama-server. Both
# servers get the same compute threads, the same number of parallel sequences, and the same
# streaming requests; the load average is printed because the machine may be shared.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=small conc=64 rounds=2 max_tokens=64 threads=2 quant=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --conc) conc=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --max-tokens) max_tokens=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --quant) quant=$2; shift 2 ;;
    *) echo "serve_compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
tidal=${TIDAL:-$root/build/release/tools/tidal/tidal}
anchors=${ANCHORS:-${TMPDIR:-/tmp}/anchors}
py=${PYTHON:-/usr/bin/python3}
llama=$anchors/llama.cpp/build/bin/llama-server
hf=$anchors/models/$model/hf
gguf=$(ls "$anchors/models/$model"/model-f16.gguf "$anchors/models/$model"/model-*.gguf 2>/dev/null | head -n 1)
for f in "$tidal" "$llama" "$hf/config.json" "$gguf"; do
  [ -e "$f" ] || { echo "serve_compare.sh: missing $f" >&2; exit 1; }
done
tidal_quant=()
if [ -n "$quant" ]; then
  tq=${quant%:*} lq=${quant##*:}
  [ "$tq" != "$quant" ] && [ -n "$tq" ] && [ -n "$lq" ] ||
    { echo "serve_compare.sh: --quant wants TIDAL_FORMAT:LLAMA_TYPE (e.g. w8a8:q8_0), got '$quant'" >&2; exit 2; }
  qgguf=$anchors/models/$model/model-$lq.gguf
  if [ ! -e "$qgguf" ]; then
    # (absolute paths: llama-quantize reads an argument starting with a digit as a type number)
    "$anchors/llama.cpp/build/bin/llama-quantize" "$(realpath "$gguf")" "$(realpath "$anchors/models/$model")/model-$lq.gguf" \
      "${lq^^}" "$threads" > /dev/null 2>&1 || { echo "serve_compare.sh: llama-quantize to ${lq^^} failed" >&2; exit 1; }
  fi
  gguf=$qgguf
  tidal_quant=(--quantization "$tq")
  [ -n "${EXCLUDE:-}" ] && tidal_quant+=(--quantization-exclude "$EXCLUDE")
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_health() {
  for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "server on port $1 did not become healthy" >&2; return 1
}
port() { echo $((20000 + RANDOM % 20000)); }

echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "# model $model: $hf ${tidal_quant[*]} | $gguf; $conc concurrent streams x $rounds rounds x $max_tokens tokens; $threads compute threads"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# llama-server: each of the N slots needs prompt + max_tokens of context (-c is split across slots).
ctx=$(( conc * (max_tokens + 64) ))
lport=$(port)
"$llama" -m "$gguf" --host 127.0.0.1 --port "$lport" -c "$ctx" --parallel "$conc" --cont-batching -t "$threads" \
  --no-webui > "$work/llama.log" 2>&1 &
lpid=$!; pids+=("$lpid")
wait_health "$lport"
llama_json=$("$py" "$root/bench/serve_load.py" --port "$lport" --conc "$conc" --rounds "$rounds" \
  --max-tokens "$max_tokens" --stream --ban-bytes --pid "$lpid" --label llama-server)
echo "$llama_json"
kill "$lpid"; wait "$lpid" 2>/dev/null || true

tport=$(port)
"$tidal" serve --model "$hf" --port "$tport" --served-model-name "$model" --threads "$threads" --max-num-seqs "$conc" \
  --kv-cache-memory 2GiB "${tidal_quant[@]}" > "$work/tidal.log" 2>&1 &
tpid=$!; pids+=("$tpid")
wait_health "$tport"
tidal_json=$("$py" "$root/bench/serve_load.py" --port "$tport" --conc "$conc" --rounds "$rounds" \
  --max-tokens "$max_tokens" --stream --pid "$tpid" --label tidal)
echo "$tidal_json"
kill "$tpid"; wait "$tpid" 2>/dev/null || true

echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" - "$llama_json" "$tidal_json" <<'EOF'
import json, sys
l, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"aggregate tok/s: tidal {t['tok_per_s']} vs llama-server {l['tok_per_s']} -> ratio {t['tok_per_s'] / l['tok_per_s']:.2f}x")
if t.get("server_cpu_ms_per_token") and l.get("server_cpu_ms_per_token"):
    print(f"server CPU ms per generated token: tidal {t['server_cpu_ms_per_token']} vs llama-server {l['server_cpu_ms_per_token']}")
if t.get("frontend_cpu_pct") is not None:
    print(f"tidal front-end CPU (outside engine steps): {t['frontend_cpu_pct']}% of process CPU, "
          f"{t['frontend_cpu_us_per_token']} us per generated token")
EOF
