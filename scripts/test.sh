#!/usr/bin/env bash
# The README's test command: install what is missing, build, and run every test:
#   1. release build: all CTest tests (unit, CLI, tokenizer/PyTorch references, every kernel level)
#   2. sanitizer build (clang, ASan + UBSan): the unit tests
#   3. libFuzzer: each fuzz target of the same sanitizer build for a bounded time on its seed corpus
#      (one target per core at a time)
#   4. ThreadSanitizer build (clang): the tests of the multi-threaded components (build.sh tsan)
# Env: TIDAL_FUZZ_SECONDS (default 30 per target), TIDAL_SKIP_SANITIZERS=1 (ASan/UBSan and TSan),
#      TIDAL_SKIP_FUZZ=1.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export TIDAL_REQUIRE_REFERENCES=1  # a missing reference fails the run instead of skipping
jobs=${TIDAL_JOBS:-$(nproc)}
start=$(date +%s)
step() { echo; echo "==> [$(( $(date +%s) - start ))s] $*"; }

step "dependencies"
./scripts/install-deps.sh

step "release build"
./scripts/build.sh release
step "release tests"
ctest --test-dir build/release -j "$jobs" --output-on-failure --timeout 900

if [ "${TIDAL_SKIP_SANITIZERS:-0}" != 1 ] || [ "${TIDAL_SKIP_FUZZ:-0}" != 1 ]; then
  step "sanitizer build (clang: ASan + UBSan, libFuzzer targets)"
  ./scripts/build.sh asan
fi
if [ "${TIDAL_SKIP_SANITIZERS:-0}" != 1 ]; then
  step "ASan + UBSan unit tests"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build/asan -L unit -j "$jobs" --output-on-failure --timeout 900
fi

# One fuzz target on a copy of its seed corpus; the log and any finding stay in $2.
fuzz_one() {
  local target=$1 work=$2 name corpus
  name=$(basename "$target"); corpus=fuzz/corpus/${name#fuzz_}
  mkdir -p "$work/corpus"
  cp -r "$corpus"/. "$work/corpus"/ 2>/dev/null || true
  "$target" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1
}
# The finding: the harness's message, the sanitizer report and the input that triggered it.
fuzz_report() {
  local target=$1 work=$2 rc=$3 name crash
  name=$(basename "$target")
  grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse|INITED)' "$work/log" | tail -n 80
  for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -f "$crash" ] || continue
    echo "--- $name input $(basename "$crash") ($(stat -c %s "$crash") bytes, reproduce: $target FILE):"
    head -c 4096 "$crash" | od -A x -t x1z -v | head -n 80
  done
  echo "fuzz $name failed (exit $rc)" >&2
}
if [ "${TIDAL_SKIP_FUZZ:-0}" != 1 ]; then
  secs=${TIDAL_FUZZ_SECONDS:-30}
  # libFuzzer runs one process per target: $jobs targets at a time keep every core busy.
  targets=()
  for target in build/asan/fuzz/fuzz_*; do [ -x "$target" ] && targets+=("$target"); done
  for ((g = 0; g < ${#targets[@]}; g += jobs)); do
    group=("${targets[@]:g:jobs}")
    step "fuzz $(for t in "${group[@]}"; do printf '%s ' "$(basename "$t")"; done)for ${secs}s each"
    pids=(); works=()
    for target in "${group[@]}"; do
      work=$(mktemp -d); works+=("$work")
      fuzz_one "$target" "$work" & pids+=($!)
    done
    failed=0
    for i in "${!group[@]}"; do
      if wait "${pids[$i]}"; then
        echo "-- $(basename "${group[$i]}"):"; tail -n 5 "${works[$i]}/log"
      else
        rc=$?; fuzz_report "${group[$i]}" "${works[$i]}" "$rc"; failed=$rc
      fi
    done
    rm -rf "${works[@]}"
    [ "$failed" = 0 ] || exit "$failed"
  done
fi
if [ "${TIDAL_SKIP_SANITIZERS:-0}" != 1 ]; then
  step "ThreadSanitizer build (clang: the multi-threaded components' tests)"
  ./scripts/build.sh tsan
  step "ThreadSanitizer tests"
  # Only the binaries build.sh tsan builds; the others are registered as *_NOT_BUILT.
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir build/tsan -L unit -E _NOT_BUILT -j "$jobs" --output-on-failure --timeout 900
fi
step "all tests passed"
