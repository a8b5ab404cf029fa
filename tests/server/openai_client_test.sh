#!/usr/bin/env bash
# usage: openai_client_test.sh TIDAL_BINARY NPM_DIR WORKDIR
# Starts `tidal serve` on a random-weight model and drives it with the official OpenAI Node client.
set -u
tidal=$1; npm_dir=$2; work=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -f "$npm_dir/node_modules/openai/package.json" ]; then
  echo "openai npm package missing in $npm_dir (scripts/install-deps.sh installs it)"
  [ -n "${TIDAL_REQUIRE_REFERENCES:-}" ] && exit 1 || exit 0
fi
rm -rf "$work"; mkdir -p "$work"
"$tidal" model init --arch qwen3 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab 600 "$work/model" 2>/dev/null || exit 1
port=$((20000 + RANDOM % 20000))
"$tidal" serve --model "$work/model" --port $port --served-model-name tiny --api-key k1 --kv-cache-memory 64MiB \
  --http-workers 256 --shutdown-grace-s 120 > "$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
NODE_PATH="$npm_dir/node_modules" node "$here/openai_client_test.cjs" "http://127.0.0.1:$port/v1" k1
rc=$?
# SIGTERM drains: a stream in flight when the signal arrives still runs to its end ([DONE]).
out="$work/drain.sse"
curl -sN -H "Authorization: Bearer k1" -H 'Content-Type: application/json' \
  -d '{"model":"tiny","prompt":[1,2,3],"max_tokens":400,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}' \
  "http://127.0.0.1:$port/v1/completions" > "$out" &
cpid=$!
for _ in $(seq 500); do [ -s "$out" ] && break; sleep 0.01; done
at_signal=$(grep -c '^data: ' "$out")
kill -TERM $pid; wait $pid; src=$?
wait $cpid
if grep -q '"completion_tokens":400' "$out" && grep -q '^data: \[DONE\]' "$out"; then
  echo "ok   SIGTERM drains an in-flight stream ($at_signal of ~400 events sent when the signal came)"
else
  echo "FAIL SIGTERM drains an in-flight stream: $(tail -c 300 "$out")"; rc=1
fi
[ $src -eq 0 ] || { echo "server exited with $src"; cat "$work/serve.log"; rc=1; }
exit $rc
