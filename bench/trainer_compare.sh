#!/usr/bin/env bash
# Trainer step throughput, Tidal (`tidal rl bench-step`) next to the same step in PyTorch
# (bench/torch_trainer_step.py, Debian's python3-torch + OpenBLAS), same machine, same run.
#   bench/trainer_compare.sh [small|10m]      THREADS=2 STEPS=10 TIDAL=build/release/tools/tidal/tidal
# small: the RL experiment's model (4 layers, width 128, ~0.85M parameters): SFT 64 x 24 tokens,
#        GRPO 256 samples x 24 tokens (8 prompt + 16 completion).
# 10m:   ~10M parameters (5 layers, width 384), SFT 64 x 128 tokens.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tidal=${TIDAL:-$root/build/release/tools/tidal/tidal}
threads=${THREADS:-2}
steps=${STEPS:-10}
which=${1:-small}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=/usr/bin/python3
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $threads, load $(cut -d' ' -f1-3 /proc/loadavg)"
case "$which" in
  small)
    "$tidal" model init --arch qwen3 --layers 4 --hidden 128 --intermediate 256 --heads 4 --kv-heads 2 \
      --vocab 1024 --dtype f32 "$work/m" >/dev/null
    runs=("sft 64 24" "grpo 256 24") ;;
  10m)
    "$tidal" model init --arch qwen3 --layers 5 --hidden 384 --intermediate 1024 --heads 6 --kv-heads 2 \
      --vocab 4096 --dtype f32 "$work/m" >/dev/null
    runs=("sft 64 128") ;;
  *) echo "usage: $0 [small|10m]" >&2; exit 2 ;;
esac
for r in "${runs[@]}"; do
  set -- $r
  "$tidal" rl bench-step --model "$work/m" --kind "$1" --batch "$2" --seq-len "$3" --steps "$steps" --threads "$threads"
  # OpenBLAS threads = torch threads on both sides (the trainer sets it itself).
  OPENBLAS_NUM_THREADS=$threads "$py" "$root/bench/torch_trainer_step.py" --model "$work/m" --kind "$1" --batch "$2" --seq-len "$3" --steps "$steps" --threads "$threads"
done
