#!/usr/bin/env bash
# In-process A/B of versions of the AVX-512 quantized kernels (src/tidal/kernels/cpu/quant_avx512.cpp)
# on one 1B decode step, with a plain read of the same bytes as the yardstick (decode_step_ab.cpp).
#
# usage: bench/kernel_ab/run.sh FORMAT TOKENS VARIANT...
#   FORMAT   nvfp4 | mxfp4 (W4A8) | int8 (W8A8)
#   TOKENS   tokens per variant (100: ~1 minute for three variants)
#   VARIANT  a git revision (its quant_avx512.cpp is used; "WORK" = the working tree's file) or a
#            path to an edited copy of quant_avx512.cpp
# Needs an AVX-512 VNNI CPU and build/release (the core and kernel libraries of the current tree,
# which the variants link against: a variant must keep the QuantKernelTable interface).
# Example: bench/kernel_ab/run.sh nvfp4 100 HEAD~1 WORK
# FP4 weights are held row-interleaved, as models hold them; TIDAL_AB_CANONICAL=1 keeps the
# canonical layout (needed for variants older than 6aa2b3c, which ignore the row strides).
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,14p' "$0"; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
fmt=$1; tokens=$2; shift 2
grep -q avx512_vnni /proc/cpuinfo || { echo "kernel_ab: needs an AVX-512 VNNI CPU" >&2; exit 1; }
for lib in build/release/src/tidal/kernels/libtidal_kernels.a build/release/src/tidal/core/libtidal_core.a; do
  [ -f "$root/$lib" ] || { echo "kernel_ab: $lib missing: build the release tree first" >&2; exit 1; }
done
out=$(mktemp -d /tmp/kernel_ab.XXXXXX)
flags=(-O2 -std=c++20 -DNDEBUG -I "$root/src" -I "$root/src/tidal/kernels/cpu" -mavx2 -mfma -mf16c -mavx512f
       -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -Wno-psabi)
list=""; objs=()
i=0
for v in "$@"; do
  i=$((i + 1)); name="v${i}_$(echo "$v" | tr -c 'A-Za-z0-9' '_' | cut -c1-20)"
  src="$out/$name.cpp"
  if [ "$v" = WORK ]; then cp "$root/src/tidal/kernels/cpu/quant_avx512.cpp" "$src"
  elif [ -f "$v" ]; then cp "$v" "$src"
  else git -C "$root" show "$v:src/tidal/kernels/cpu/quant_avx512.cpp" > "$src"; fi
  # The table function and quant_avx2.cpp's VNNI table (included by the file) renamed per variant.
  g++ "${flags[@]}" -Dquant_kernel_table_avx512_vnni="$name" -DkQuantKernelTableAvx2Vnni="kAvx2Vnni_$name" \
      -c "$src" -o "$out/$name.o"
  list="$list X($name)"; objs+=("$out/$name.o")
  echo "variant $name: $v"
done
g++ "${flags[@]}" "-DTIDAL_AB_VARIANTS=$list" "$root/bench/kernel_ab/decode_step_ab.cpp" "${objs[@]}" \
    "$root/build/release/src/tidal/kernels/libtidal_kernels.a" "$root/build/release/src/tidal/core/libtidal_core.a" \
    -lpthread -o "$out/decode_step_ab"
"$out/decode_step_ab" "$fmt" "$tokens"
rm -rf "$out"
