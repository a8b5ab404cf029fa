#!/usr/bin/env bash
# build.sh [release|asan|tsan|fuzz]: configure and build into build/<kind>. Parallelism: $TIDAL_JOBS or nproc.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-release}
# The test binaries of the tsan tree (scripts/test.sh runs them).
TIDAL_TSAN_TESTS="core_test http_server_test engine_test server_test rollout_test"
jobs=${TIDAL_JOBS:-$(nproc)}
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  # asan: one clang tree for the sanitizer pass: ASan + UBSan on every library and test, plus
  # libFuzzer coverage so the same tree builds the fuzz targets (build/asan/fuzz/fuzz_*). -O0
  # (kernels, tokenizer, model and engine -O1: CMakeLists.txt) and line tables only (stack traces
  # keep file:line), asserts on: about a quarter of the compile work of GCC at RelWithDebInfo plus
  # a separate fuzz tree. Only the test binaries labelled `unit` (the ones the sanitizer pass runs;
  # the integration tests need root and run in the release tree). No libtorch component: its tests
  # are not `unit`, libtorch is not built with ASan, and those are the slowest compiles of the suite.
  asan) flags=(-DCMAKE_BUILD_TYPE=Sanitize "-DCMAKE_CXX_FLAGS_SANITIZE=-O0 -gline-tables-only"
               "-DCMAKE_C_FLAGS_SANITIZE=-O0 -gline-tables-only"
               -DTIDAL_SANITIZE=ON -DTIDAL_FUZZ=ON -DTIDAL_BUILD_BENCH=OFF -DTIDAL_BUILD_RL=OFF
               -DTIDAL_UNIT_TESTS_ONLY=ON
               -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++) ;;
  # tsan: ThreadSanitizer (clang, -O1) on the test binaries whose code runs on several threads:
  # the thread pool (core), the HTTP server, the engine, the OpenAI server and the rollout manager.
  # The sandbox tests are left out (their processes are made with clone/vfork, which TSan does not
  # model), and so is everything single-threaded (the ASan pass covers it).
  tsan) flags=(-DCMAKE_BUILD_TYPE=Sanitize "-DCMAKE_CXX_FLAGS_SANITIZE=-O1 -gline-tables-only"
               "-DCMAKE_C_FLAGS_SANITIZE=-O1 -gline-tables-only"
               -DTIDAL_TSAN=ON -DTIDAL_BUILD_BENCH=OFF -DTIDAL_BUILD_RL=OFF -DTIDAL_UNIT_TESTS_ONLY=ON
               -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++) ;;
  fuzz) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDAL_FUZZ=ON -DTIDAL_BUILD_BENCH=OFF
               -DTIDAL_BUILD_RL=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "build.sh: unknown build kind '$kind' (release|asan|tsan|fuzz)" >&2; exit 2 ;;
esac
# A tree configured with another compiler (e.g. an older GCC sanitizer tree) is reconfigured from scratch.
cache="$root/build/$kind/CMakeCache.txt"
for arg in "${flags[@]}"; do
  case "$arg" in -DCMAKE_CXX_COMPILER=*)
    if [ -f "$cache" ] && ! grep -q "^CMAKE_CXX_COMPILER:[A-Z]*=.*${arg#-DCMAKE_CXX_COMPILER=}\$" "$cache"; then
      echo "build.sh: build/$kind was configured with another compiler; reconfiguring" >&2
      rm -rf "$root/build/$kind"
    fi ;;
  esac
done
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root" -B "$root/build/$kind" "${gen[@]}" "${flags[@]}" >/dev/null
targets=()
if [ "$kind" = fuzz ]; then  # only the fuzz targets (fuzz/fuzz_<name>.cpp) and what they link
  for f in "$root"/fuzz/fuzz_*.cpp; do targets+=(--target "$(basename "$f" .cpp)"); done
fi
if [ "$kind" = tsan ]; then
  for t in $TIDAL_TSAN_TESTS; do targets+=(--target "$t"); done
fi
cmake --build "$root/build/$kind" -j "$jobs" "${targets[@]}"
