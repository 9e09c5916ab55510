#!/usr/bin/env bash
# A fresh, minimal Debian 12 for the opt-in fresh-machine run (run.sh):
# debootstrap's default variant (priority required + important: what the
# Debian installer puts on a machine with no task selected; no sudo, no
# compiler), root with no password, Debian 12's own 6.1 kernel's modules
# (the kernel of tests/matrix/kernels.conf, debian12) in /lib/modules.
#   tests/freshvm/build_root.sh          # into $cache/fresh-debian12/root, once
# Cache: $HOPTRACE_MATRIX_CACHE (default /var/cache/hoptrace-matrix), outside
# the source tree. The pristine root is kept as a tarball; each run unpacks
# its own copy (run.sh), so every run starts from the same fresh machine.
# Needs scripts/setup-matrix.sh (debootstrap, and the debian12 kernel).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${HOPTRACE_MATRIX_CACHE:-/var/cache/hoptrace-matrix}
dir=$cache/fresh-debian12
tarball=$dir/root.tar
[ -f "$tarball" ] && { echo "build_root: $tarball ready"; exit 0; }
command -v debootstrap >/dev/null || { echo "build_root: run sudo scripts/setup-matrix.sh" >&2; exit 1; }
"$here/../matrix/fetch_kernels.sh" debian12 >&2
kdir=$cache/debian12
release=$(cat "$kdir/release")

mkdir -p "$dir"
stage=$dir/stage
rm -rf "$stage"
echo "build_root: debootstrap bookworm into $stage"
debootstrap --arch=amd64 bookworm "$stage" http://deb.debian.org/debian
# The kernel's modules, as its package would have installed them.
mkdir -p "$stage/lib/modules"
cp -a "$kdir/root/lib/modules/$release" "$stage/lib/modules/"
echo "hoptrace-fresh" > "$stage/etc/hostname"
# apt's sources as the installer writes them (debootstrap leaves only main).
cat > "$stage/etc/apt/sources.list" <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://security.debian.org/debian-security bookworm-security main
LIST
rm -rf "$stage/var/cache/apt/archives/"*.deb
tar -C "$stage" -cf "$tarball.part" .
mv "$tarball.part" "$tarball"
rm -rf "$stage"
echo "build_root: $tarball ready ($(du -sh "$tarball" | cut -f1))"
