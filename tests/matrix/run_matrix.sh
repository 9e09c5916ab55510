#!/usr/bin/env bash
# The whole kernel matrix, one VM at a time, then the table into README.md.
#   sudo tests/matrix/run_matrix.sh        # needs a build (build/agent/hoptrace)
# Exit: ctest's status (a kernel where a feature does not work fails its
# test); the table is rendered from whatever rows were measured either way.
set -uo pipefail
cd "$(dirname "$0")/../.."
./scripts/setup-matrix.sh >/dev/null || exit 1
start=$(date +%s)
ctest --test-dir build -L matrix --output-on-failure
rc=$?
echo "run_matrix: $(( $(date +%s) - start )) s wall for the matrix"
/usr/bin/python3 tests/matrix/render_table.py build/tests/matrix/results README.md
exit "$rc"
