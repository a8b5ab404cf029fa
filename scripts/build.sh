#!/usr/bin/env bash
# build.sh [release|asan|fuzz]: configure and build into build/<kind>. Parallelism: $TIDAL_JOBS or nproc.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-release}
jobs=${TIDAL_JOBS:-$(nproc)}
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  # asan: no libtorch component (its tests are not `unit`; libtorch is not built with ASan), which
  # also skips the slowest compiles of the suite.
  asan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDAL_SANITIZE=ON -DTIDAL_BUILD_BENCH=OFF -DTIDAL_BUILD_RL=OFF) ;;
  fuzz) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDAL_FUZZ=ON -DTIDAL_BUILD_BENCH=OFF
               -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "build.sh: unknown build kind '$kind' (release|asan|fuzz)" >&2; exit 2 ;;
esac
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root" -B "$root/build/$kind" "${gen[@]}" "${flags[@]}" >/dev/null
targets=()
if [ "$kind" = fuzz ]; then  # only the fuzz targets (fuzz/fuzz_<name>.cpp) and what they link
  for f in "$root"/fuzz/fuzz_*.cpp; do targets+=(--target "$(basename "$f" .cpp)"); done
fi
cmake --build "$root/build/$kind" -j "$jobs" "${targets[@]}"
