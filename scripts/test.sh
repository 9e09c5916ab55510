#!/usr/bin/env bash
# Sets everything up and runs every test: unit (no root), integration (root:
# real BPF, real processes in network namespaces), fuzzing (bounded time).
#   sudo ./scripts/test.sh            # all of it
#   sudo ./scripts/test.sh -L unit    # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

before=$(bpftool prog list 2>/dev/null | grep -c ' name ht_' || true)
# The kernel matrix (ctest -L matrix: QEMU, ~20 min) runs only when asked for.
[ $# -gt 0 ] || set -- -LE matrix
ctest --test-dir build --output-on-failure "$@"
after=$(bpftool prog list 2>/dev/null | grep -c ' name ht_' || true)
if [ "$after" -gt "$before" ]; then
  echo "test.sh: $((after - before)) hoptrace BPF programs left in the kernel" >&2
  exit 1
fi
