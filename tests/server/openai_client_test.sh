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
  --http-workers 256 > "$work/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
NODE_PATH="$npm_dir/node_modules" node "$here/openai_client_test.cjs" "http://127.0.0.1:$port/v1" k1
rc=$?
kill -TERM $pid; wait $pid; src=$?
[ $src -eq 0 ] || { echo "server exited with $src"; cat "$work/serve.log"; rc=1; }
exit $rc
