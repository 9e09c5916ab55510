#!/usr/bin/env bash
# Sets everything up and runs every test: unit (no root), integration (root:
# real BPF, real processes in network namespaces), fuzzing (bounded time),
# and, when asked (-L matrix), the kernel matrix (Debian 11, 12, 13 under QEMU, and the host).
#   ./scripts/test.sh            # all of it (as root, or through sudo)
#   ./scripts/test.sh -L unit    # extra arguments go to ctest
# Ends with the skipped tests and their reasons, then the check that nothing
# of ours stayed in the kernel; both run whether the tests passed or not.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo -E "$0" "$@"; fi
  echo "test.sh: needs root (BPF, network namespaces, packages): run it as root" >&2
  exit 1
fi

./scripts/setup-matrix.sh   # setup.sh --tests, QEMU and the matrix's kernels
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

skip_log=build/test-skips.log
ctest_log=build/ctest-output.log
rm -f "$skip_log"
before=$(bpftool prog list 2>/dev/null | grep -c ' name ht_' || true)
netns_before=$(ip netns list 2>/dev/null | grep -c . || true)
status=0
# The kernel matrix (ctest -L matrix: Debian 11/12/13 under QEMU TCG, 5-8 min each, ~21 min)
# and the fresh-machine run (ctest -L freshvm: hours) run only when asked
# for (./scripts/test.sh -L matrix): on 2026-12-06 the Debian 13 guest
# failed twice under TCG (a read-only chain once, then a guest kernel panic
# in __schedule while programs attached), not understood yet; see README.
# The image's build and run (ctest -L image_build: the first build of the image took
# 35 min on a loaded 2-core machine, later ones 1-4 min from buildah's layer and compiler
# caches) is asked for the same way: ./scripts/test.sh -L image_build.
[ $# -gt 0 ] || set -- -LE 'matrix|freshvm|image_build'
case " $* " in
  *image_build*) ./scripts/setup.sh --tests --image ;;  # buildah, podman, runc, the base
esac

ctest --test-dir build --output-on-failure --output-log "$ctest_log" "$@" || status=$?

# Skips: pytest's (through conftest.py's log) and GoogleTest's.
{
  [ -f "$skip_log" ] && cat "$skip_log"
  grep -h '^\[  SKIPPED \] [A-Za-z]' "$ctest_log" 2>/dev/null | sed 's/^\[  SKIPPED \] /unit: /'
} > build/test-skips.all || true
count=$(grep -c . build/test-skips.all || true)
echo "test.sh: $count tests skipped"
sed 's/^/  skipped: /' build/test-skips.all

after=$(bpftool prog list 2>/dev/null | grep -c ' name ht_' || true)
if [ "$after" -gt "$before" ]; then
  echo "test.sh: $((after - before)) hoptrace BPF programs left in the kernel" >&2
  bpftool prog list | grep ' name ht_' >&2 || true
  status=1
fi
netns_after=$(ip netns list 2>/dev/null | grep -c . || true)
if [ "$netns_after" -gt "$netns_before" ]; then
  echo "test.sh: $((netns_after - netns_before)) network namespaces left behind" >&2
  status=1
fi
exit "$status"
