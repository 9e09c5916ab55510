#!/usr/bin/env bash
# The README's promise, for real: on a fresh, minimal Debian 12 (its own 6.1
# kernel, no sudo, no compiler; tests/freshvm/build_root.sh) the README's two
# commands work as written. Makes that machine's disk (an ext4 image of the
# pristine root, with a `git clone` of this repository's HEAD in
# /root/hoptrace), boots it under QEMU (TCG) with a user-mode network (apt
# downloads from Debian's mirrors) and runs inside.sh there:
# ./scripts/demo.sh as root without sudo, then as a user through sudo; with
# --tests also ./scripts/test.sh. Checks that each demo printed the demo's
# trace tree. Opt-in (ctest -L freshvm): it downloads ~1 GB of packages and
# builds hoptrace under emulation.
#   sudo tests/freshvm/run.sh [--tests] [--timeout S]
# Exit 0 when every step passed. Each step's output and status land in
# $HOPTRACE_MATRIX_CACHE/fresh-debian12/run/results as it runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${HOPTRACE_MATRIX_CACHE:-/var/cache/hoptrace-matrix}
timeout=14400 tests=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) tests=1; shift;;
    --timeout) timeout=$2; shift 2;;
    *) sed -n '2,14p' "$0" >&2; exit 2;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "freshvm: run as root" >&2; exit 2; }

"$here/build_root.sh"
work=$cache/fresh-debian12/run
res=$work/results
rm -rf "$work"
mkdir -p "$work/root" "$res"
tar -C "$work/root" -xf "$cache/fresh-debian12/root.tar"
git clone -q --no-hardlinks "$repo" "$work/root/root/hoptrace"
install -m 755 "$here/inside.sh" "$work/root/root/fresh-inside.sh"
printf 'HT_FRESH_TESTS=%s\nHT_FRESH_OUT=%s\n' "$tests" "$res" > "$work/root/root/fresh-env"
install -D -m 755 "$repo/tests/matrix/guest_init.sh" "$work/root/sbin/hoptrace-vm-init"
mkdir -p "$work/root$res"  # where run_vm.sh --rw mounts the results share
# The machine's disk: ext4, as the installer makes it, with room for the
# packages and the build (sparse: only what is written takes space).
mkfs.ext4 -q -F -L fresh-root -d "$work/root" "$work/disk.img" 24G
rm -rf "$work/root"

start=$(date +%s)
set +e
"$repo/tests/matrix/run_vm.sh" --disk "$work/disk.img" --rw "$res" --net --mem 4096 \
  --timeout "$timeout" debian12 -- /bin/bash /root/fresh-inside.sh
rc=$?
set -e
echo "freshvm: $(( $(date +%s) - start )) s in the VM, rc $rc; machine: $(tr '\n' ' ' < "$res/machine.txt" 2>/dev/null)"
ok=1
for s in demo_root sudo_install demo_sudo $([ "$tests" = 1 ] && echo test_root); do
  if [ ! -f "$res/$s.rc" ]; then
    echo "freshvm: $s: not run"; ok=0; continue
  fi
  read -r src secs < "$res/$s.rc"
  echo "freshvm: $s: rc $src, $secs s"
  [ "$src" = 0 ] || { ok=0; tail -30 "$res/$s.out"; }
done
# The demo's own trace: the caller's trace id, the frontend's SERVER span
# and the backend's below its CLIENT span.
for s in demo_root demo_sudo; do
  f=$res/$s.out
  [ -f "$f" ] || continue
  if grep -q "trace 4bf92f3577b34da6a3ce929d0e0e4736" "$f" && grep -q "frontend  SERVER GET /work" "$f" &&
     grep -q "frontend  CLIENT GET http://127.0.0.1:19090/work" "$f" && grep -q "backend  SERVER GET /work" "$f"; then
    echo "freshvm: $s: the demo's trace tree printed"
  else
    echo "freshvm: $s: the demo's trace tree is missing"; ok=0
  fi
done
[ "$ok" = 1 ] && [ "$rc" = 0 ]
