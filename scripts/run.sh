#!/usr/bin/env bash
# The README's main job: install what is missing, build, and run the RL job
# examples/count-letters.toml: Tidal initialises a tiny character-level model, warms it up with SFT
# on generated demonstrations, then trains it with GRPO on its own samples (in-process engine for
# rollouts, libtorch trainer, weights synced every step). Progress on stderr; the last stdout line
# is the summary JSON (sft/rl accuracy and sampled reward, generalisation probes, wall_s).
# Env: TIDAL_RL_CONFIG (default examples/count-letters.toml), TIDAL_RUN_DIR (default
# runs/count-letters-<date>), TIDAL_RL_SET (extra --set assignments).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
step() { echo; echo "==> $*" >&2; }
step "dependencies"
./scripts/install-deps.sh >&2
step "build (release)"
./scripts/build.sh release >&2
tidal=build/release/tools/tidal/tidal
config=${TIDAL_RL_CONFIG:-examples/count-letters.toml}
run_dir=${TIDAL_RUN_DIR:-runs/count-letters-$(date +%Y%m%d-%H%M%S)}
step "tidal rl $config (outputs in $run_dir: metrics.jsonl, curve.svg, checkpoints; docs/rl.md)"
"$tidal" rl "$config" --set "run.dir=\"$run_dir\"${TIDAL_RL_SET:+;$TIDAL_RL_SET}"
