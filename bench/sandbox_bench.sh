#!/usr/bin/env bash
# sandbox_bench.sh [N] [BUILD_DIR] [CLIENTS] [-- more `tidal sandbox bench` flags, e.g. --density 1000 --fork-mb 100]:
# sandbox create/exec/fork latency (p50, p99) for N sandboxes, against
# `sh -c true`, a bare `unshare` of the same namespaces and bubblewrap running the same `true`, all
# measured in the same run on this machine. Needs root and bwrap (Debian package bubblewrap).
# Results and how to read them: docs/sandbox-api.md ("Performance").
set -euo pipefail
n=${1:-100}
build=${2:-build/release}
clients=${3:-16}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tidal="$root/$build/tools/tidal/tidal"
if [ ! -x "$tidal" ]; then
  echo "sandbox_bench.sh: $tidal not built (cmake --build $build --target tidal)" >&2
  exit 2
fi
command -v bwrap >/dev/null || { echo "sandbox_bench.sh: bwrap missing (apt-get install bubblewrap)" >&2; exit 2; }
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores, commit $(git -C "$root" rev-parse --short HEAD)"
state="${TMPDIR:-/tmp}/tidal-sandbox-bench-$$"
trap 'rm -rf "$state" "$state-warm"' EXIT  # the template copies (every mount is gone by then)
"$tidal" sandbox bench --n "$n" --clients "$clients" --root "$state" "$@"
