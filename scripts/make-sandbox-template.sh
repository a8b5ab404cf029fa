#!/usr/bin/env bash
# make-sandbox-template.sh [DIR]: builds a minimal Debian root filesystem with python3 for the
# sandbox service (docs/sandbox-api.md, "Templates"), then use it with
#   tidal sandbox serve --template debian=DIR
# DIR defaults to /var/lib/tidal-sandbox-templates/debian. Needs root and network access to the
# Debian mirror; downloads ~40 MB of packages and takes a few minutes. Idempotent: a finished
# template (DIR/etc/tidal-template) is left as it is; delete DIR to rebuild it. The build happens in
# DIR.partial and is renamed to DIR only when complete, so an interrupted run never leaves a
# half-built DIR (the next run starts the build over).
# Environment: TIDAL_TEMPLATE_SUITE (bookworm), TIDAL_TEMPLATE_MIRROR (http://deb.debian.org/debian),
# TIDAL_TEMPLATE_INCLUDE (extra packages, comma-separated, besides python3).
set -euo pipefail
dir=${1:-/var/lib/tidal-sandbox-templates/debian}
suite=${TIDAL_TEMPLATE_SUITE:-bookworm}
mirror=${TIDAL_TEMPLATE_MIRROR:-http://deb.debian.org/debian}
include=python3${TIDAL_TEMPLATE_INCLUDE:+,$TIDAL_TEMPLATE_INCLUDE}
say() { echo "[template] $*"; }
die() { echo "[template] error: $*" >&2; exit 1; }

case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac
dir=${dir%/}
[ -n "$dir" ] && [ "$dir" != / ] || die "refusing to build into /"
if [ -f "$dir/etc/tidal-template" ]; then
  say "$dir is already built: $(head -1 "$dir/etc/tidal-template")"
  say "nothing to do (delete $dir to rebuild it)"
  exit 0
fi
if [ -e "$dir" ]; then
  die "$dir exists but is not a finished template (no etc/tidal-template); move it away first"
fi
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap creates device nodes and chroots)"
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap
fi

start=$SECONDS
partial="$dir.partial"
if [ -e "$partial" ]; then
  say "removing an interrupted build: $partial"
  # debootstrap may have left /proc mounted inside it.
  grep -F " $partial/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$partial"
fi
mkdir -p "$(dirname "$dir")"
say "step 1/3: debootstrap --variant=minbase --include=$include $suite $partial $mirror"
say "  (downloads and unpacks ~100 packages; its own progress lines start with I:)"
debootstrap --variant=minbase --include="$include" "$suite" "$partial" "$mirror"

say "step 2/3: making it a sandbox template (no host names or resolvers, no package caches)"
# debootstrap copies some of the host's files in: replace them by sandbox-neutral ones.
echo sandbox > "$partial/etc/hostname"
printf '127.0.0.1 localhost sandbox\n::1 localhost\n' > "$partial/etc/hosts"
rm -f "$partial/etc/resolv.conf" && : > "$partial/etc/resolv.conf"
rm -f "$partial"/var/cache/apt/archives/*.deb "$partial"/var/cache/apt/*.bin
rm -rf "$partial"/var/lib/apt/lists/* "$partial"/var/log/*.log "$partial"/var/log/apt/*
mkdir -p -m 0755 "$partial/workspace"
python=$(chroot "$partial" python3 --version 2>&1) || die "python3 does not run in $partial: $python"
printf '%s\n' "debian $suite minbase + $include ($python), built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $mirror" \
  > "$partial/etc/tidal-template"

say "step 3/3: installing $dir"
mv "$partial" "$dir"
size=$(du -sh --one-file-system "$dir" | cut -f1)
say "done in $((SECONDS - start)) s: $dir ($size, $python)"
say "use it: tidal sandbox serve --template debian=$dir   and create with {\"template\": \"debian\"}"
