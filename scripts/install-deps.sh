#!/usr/bin/env bash
# Install whatever Debian packages Tidal needs that are missing (idempotent; a no-op when all are
# present). Debian package lists: scripts/deps/*.txt except npm-*.txt, one package per line, '#'
# comments. npm packages (test references only): scripts/deps/npm-*.txt, installed into
# $TIDAL_NPM_DIR (default build/npm) with the machine's npm; skipped when npm is absent.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
apt_lists=$(ls "$here"/deps/*.txt | grep -v '/npm-')
mapfile -t wanted < <(cat $apt_lists | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[deps] all ${#wanted[@]} Debian packages present"
else
  echo "[deps] installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm references for the tests (exact versions pinned in the lists).
npm_dir=${TIDAL_NPM_DIR:-$root/build/npm}
mapfile -t npm_wanted < <(cat "$here"/deps/npm-*.txt 2>/dev/null | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
if [ ${#npm_wanted[@]} -gt 0 ] && command -v npm >/dev/null; then
  npm_missing=()
  for pkg in "${npm_wanted[@]}"; do
    name=${pkg%@*}
    [ -f "$npm_dir/node_modules/$name/package.json" ] || npm_missing+=("$pkg")
  done
  if [ ${#npm_missing[@]} -gt 0 ]; then
    echo "[deps] npm install into $npm_dir: ${npm_missing[*]}"
    mkdir -p "$npm_dir"
    [ -f "$npm_dir/package.json" ] || echo '{"name":"tidal-test-references","private":true}' > "$npm_dir/package.json"
    (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error "${npm_missing[@]}")
  else
    echo "[deps] all ${#npm_wanted[@]} npm packages present in $npm_dir"
  fi
fi
