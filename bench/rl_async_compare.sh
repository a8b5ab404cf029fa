#!/usr/bin/env bash
# Synchronous vs asynchronous RL on the same config and machine: the count-letters job's GRPO phase
# from one shared SFT checkpoint, with grpo.max_policy_lag = 0 (generate, then train), 1 and 2.
# Reports per run: GRPO wall time, trajectories/s, mean step time, time the trainer waited for
# rollouts, and held-out accuracy / sampled reward after GRPO; then the speed-up over lag 0.
#   bench/rl_async_compare.sh [STEPS]       (default 100; LR=2e-4; TIDAL=build/release/tools/tidal/tidal)
# LR: one learning rate for all three runs (at the example's 5e-4 the synchronous run collapses
# onto one answer per prompt, docs/rl.md; 2e-4 is stable for all three).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tidal=${TIDAL:-$root/build/release/tools/tidal/tidal}
steps=${1:-100}
lr=${LR:-2e-4}
config=$root/examples/count-letters.toml
work=${WORK:-$(mktemp -d)}
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg), $steps GRPO steps, lr $lr"
# One SFT checkpoint for all runs (grpo.steps = 0: SFT + evaluation only).
[ -f "$work/sft/sft/config.json" ] || "$tidal" rl "$config" --set "run.dir=\"$work/sft\";grpo.steps=0" >/dev/null 2>"$work/sft.log"
for lag in 0 1 2; do
  rm -rf "$work/lag$lag"
  "$tidal" rl "$config" --set "run.dir=\"$work/lag$lag\";model.path=\"$work/sft/sft\";sft.steps=0;grpo.steps=$steps;grpo.max_policy_lag=$lag;grpo.lr=$lr;eval.every=0" \
    >"$work/lag$lag.json" 2>"$work/lag$lag.log"
done
/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rows = {}
for lag in (0, 1, 2):
    res = json.loads(open(f"{work}/lag{lag}.json").read().strip().splitlines()[-1])
    steps = [json.loads(l) for l in open(f"{work}/lag{lag}/metrics.jsonl") if '"phase":"grpo"' in l]
    wall = steps[-1]["wall_s"] - (steps[0]["wall_s"] - sum(steps[0]["time_s"].values()))
    traj = sum(s["groups"] for s in steps) * 8
    wait = sum(s["time_s"]["wait_rollout"] for s in steps)
    rows[lag] = (wall, traj / wall, wall / len(steps), wait, res["rl_accuracy"], res["rl_sampled_reward"],
                 res["sft_accuracy"], max(s["staleness_max"] for s in steps))
print("| max_policy_lag | GRPO wall s | trajectories/s | s/step | trainer waited s | staleness max | greedy acc (SFT -> RL) | sampled reward | speed-up |")
print("|---|---|---|---|---|---|---|---|---|")
for lag, (wall, tps, sps, wait, acc, rew, sft, st) in rows.items():
    print(f"| {lag} | {wall:.0f} | {tps:.0f} | {sps:.2f} | {wait:.0f} | {st:.0f} | {sft:.3f} -> {acc:.3f} | {rew:.3f} | {rows[0][0] / wall:.2f}x |")
PY
