#!/usr/bin/env bash
# bench/update_weights_bench.sh: time of POST /admin/update_weights for a model's safetensors file
# that is in the page cache (issue 5: ~1B BF16 model, goal <= 1 s).
#
#   bench/update_weights_bench.sh [HF_MODEL_DIR] [REPS]
#
# Default model: ${ANCHORS:-/tmp/anchors}/models/1b-bf16/hf. Env: TIDAL (the binary).
# For each repetition: the server-side swap time (the response's "seconds": pause, open + map +
# bind the new file, resume), the client's wall time for the call, and GB/s = file bytes / swap
# seconds; then the latency of a 1-token completion right after the swap (the first forward
# touches the newly mapped pages) and of a second one (warm), to show what the swap defers.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hf=${1:-${ANCHORS:-${TMPDIR:-/tmp}/anchors}/models/1b-bf16/hf}
reps=${2:-5}
tidal=${TIDAL:-$root/build/release/tools/tidal/tidal}
file=$(ls "$hf"/*.safetensors | head -n 1)
bytes=$(stat -c %s "$file")
port=$((20000 + RANDOM % 20000))
log=$(mktemp)
"$tidal" serve --model "$hf" --port "$port" --threads 2 --kv-cache-memory 256MiB > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.25; done
cat "$file" > /dev/null  # into the page cache
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $file: $bytes bytes"
echo "| rep | swap s (server) | call s (client) | GB/s | 1st completion after swap s | next completion s |"
echo "|---:|---:|---:|---:|---:|---:|"
req='{"prompt":[1,2,3,4],"max_tokens":1,"temperature":0}'
for i in $(seq "$reps"); do
  t0=$(date +%s.%N)
  resp=$(curl -sf -X POST -H 'Content-Type: application/json' -d "{\"path\":\"$file\"}" \
         "http://127.0.0.1:$port/admin/update_weights")
  t1=$(date +%s.%N)
  curl -sf -X POST -H 'Content-Type: application/json' -d "$req" "http://127.0.0.1:$port/v1/completions" >/dev/null
  t2=$(date +%s.%N)
  curl -sf -X POST -H 'Content-Type: application/json' -d "$req" "http://127.0.0.1:$port/v1/completions" >/dev/null
  t3=$(date +%s.%N)
  /usr/bin/python3 - "$resp" "$t0" "$t1" "$t2" "$t3" "$bytes" "$i" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:6]); b = int(sys.argv[6]); i = sys.argv[7]
s = r["seconds"]
print(f"| {i} | {s:.4f} | {t1 - t0:.4f} | {b / s / 1e9:.1f} | {t2 - t1:.3f} | {t3 - t2:.3f} |")
EOF
done
