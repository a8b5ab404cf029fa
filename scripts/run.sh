#!/usr/bin/env bash
# The README's main job: install what is missing, build, create the built-in default model with
# `tidal model init` (a random-weight Qwen3-shaped model), and generate text from it.
# Env: TIDAL_MODEL_DIR (default build/default-model), TIDAL_PROMPT, TIDAL_MAX_TOKENS.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
step() { echo; echo "==> $*"; }
step "dependencies"
./scripts/install-deps.sh
step "build (release)"
./scripts/build.sh release
tidal=build/release/tools/tidal/tidal
model=${TIDAL_MODEL_DIR:-build/default-model}
if [ ! -f "$model/config.json" ]; then
  step "create the default model in $model"
  "$tidal" model init --arch qwen3 --layers 4 --hidden 512 --intermediate 1536 --heads 8 --kv-heads 2 \
    --vocab 8192 --dtype bf16 --seed 1 "$model"
fi
step "generate (random weights: the text is noise, the pipeline is real)"
"$tidal" generate --model "$model" --prompt "${TIDAL_PROMPT:-The tide comes in and}" \
  --max-tokens "${TIDAL_MAX_TOKENS:-48}" --temperature 0.8 --seed 1
