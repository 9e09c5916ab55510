#!/usr/bin/env bash
# Sets everything up and runs every test: unit (no root), integration (root:
# real BPF, real processes in network namespaces), fuzzing (bounded time),
# and the kernel matrix (Debian 11, 12 and 13 booted under QEMU, and the host).
#   ./scripts/test.sh            # all of it (as root, or through sudo)
#   ./scripts/test.sh -L unit    # extra arguments go to ctest (then no matrix
#                                # unless they ask for it: -L matrix)
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
# What this run leaves behind is checked by what it made, not by counting the
# machine's (another checkout's tests may run beside it): the namespaces its
# tests name in this log, and agents of this build still running (nothing is
# pinned, so a BPF program outlives its tests only inside a live agent).
export HOPTRACE_NETNS_LOG=$PWD/build/test-netns.log
rm -f "$HOPTRACE_NETNS_LOG"
own_agents() {
  local p
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/exe" 2>/dev/null)" = "$PWD/build/agent/hoptrace" ]; then
      echo "${p#/proc/}"
    fi
  done
}
status=0
# With no arguments: the host's tests, and the kernel matrix's three guests
# (ctest in build/tests/matrix: Debian 11, 12, 13 under QEMU TCG, one after the
# other, 3-6 min each alone) running alongside them. Their qemu runs at
# nice 10 (run_vm.sh): the host's tests keep the CPU they ask for, the guests
# take what is left, and every wait in a guest is scaled by how slowly its
# agent got ready (cell.py), so a guest slowed by the host's tests waits
# longer instead of failing. The host's own cell (matrix.host) runs the same
# integration tests as the host suite (the same namespaces and addresses):
# after it, alone.
# Asked for only: the fresh-machine run (ctest -L freshvm: hours) and the
# image's build and run (ctest -L image_build: the first build of the image took
# 35 min on a loaded 2-core machine, later ones 1-4 min from buildah's layer and compiler
# caches): ./scripts/test.sh -L image_build.
matrix_pid=
stop_matrix() {
  # The guests' ctest was started in its own process group (setsid): it,
  # run_vm.sh and qemu go together.
  [ -n "$matrix_pid" ] && kill -TERM -- "-$matrix_pid" 2>/dev/null || true
}
if [ $# -eq 0 ]; then
  set -- -LE 'matrix|freshvm|image_build'
  matrix_log=build/ctest-matrix.log
  echo "test.sh: the kernel matrix's guests run alongside (their output: build/matrix-guests.out)"
  setsid -w ctest --test-dir build/tests/matrix -E '^matrix[.]host$' --output-on-failure \
    --output-log "$PWD/$matrix_log" > build/matrix-guests.out 2>&1 &
  matrix_pid=$!
  trap 'stop_matrix; exit 130' INT TERM HUP
fi
case " $* " in
  *image_build*) ./scripts/setup.sh --tests --image ;;  # buildah, podman, runc, the base
esac

ctest --test-dir build --output-on-failure --output-log "$ctest_log" "$@" || status=$?

if [ -n "$matrix_pid" ]; then
  echo "test.sh: waiting for the kernel matrix's guests"
  wait "$matrix_pid" || status=1
  matrix_pid=
  trap - INT TERM HUP
  cat build/matrix-guests.out
  ctest --test-dir build/tests/matrix -R '^matrix[.]host$' --output-on-failure || status=1
  # The table README.md carries, from these runs' rows.
  /usr/bin/python3 tests/matrix/render_table.py --print || true
fi

# Skips: pytest's (through conftest.py's log) and GoogleTest's.
{
  [ -f "$skip_log" ] && cat "$skip_log"
  grep -h '^\[  SKIPPED \] [A-Za-z]' "$ctest_log" 2>/dev/null | sed 's/^\[  SKIPPED \] /unit: /'
} > build/test-skips.all || true
count=$(grep -c . build/test-skips.all || true)
echo "test.sh: $count tests skipped"
sed 's/^/  skipped: /' build/test-skips.all

agents=$(own_agents)
if [ -n "$agents" ]; then
  echo "test.sh: agents of this build still running (their BPF programs with them):" >&2
  for p in $agents; do echo "  $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)" >&2; done
  status=1
fi
if [ -f "$HOPTRACE_NETNS_LOG" ]; then
  left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -Fx -f "$HOPTRACE_NETNS_LOG" || true)
  if [ -n "$left" ]; then
    echo "test.sh: network namespaces left behind: $(echo $left)" >&2
    status=1
  fi
fi
exit "$status"
