#!/usr/bin/env bash
# How often an outgoing request's CLIENT span gets the right parent, per
# server model and concurrency (issue 11): runs
# tests/integration/test_propagation_models.py with more requests and rounds
# and prints one table, model x concurrency, of right / wrong / none.
#
#   sudo tests/bench/parent_accuracy.sh [--runs 3] [--requests 1500] [--build DIR] [MODEL ...]
#
# MODEL selects cases by pytest -k (e.g. "asyncio", "fastapi_async or
# aiohttp"); none means every case. Each case starts its services and one
# agent, then makes --runs rounds of --requests requests at each concurrency
# (1, 8, 64). A cell is the worst round: the lowest share of right parents,
# the highest share of wrong ones and the highest share of none, each with
# its count. The test's own bounds (FLOOR, WRONG_MAX) still apply: a case
# below them is marked FAIL. Runs Debian's /usr/bin/python3 (its pytest and
# python3-* packages), as the ctest entries do. No pass/fail of its own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS=3
REQUESTS=1500
BUILD="$ROOT/build"
MODELS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) MODELS+=("$1"); shift ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "parent_accuracy: needs root" >&2; exit 1; }
[ -x "$BUILD/agent/hoptrace" ] || { echo "parent_accuracy: no $BUILD/agent/hoptrace; build first" >&2; exit 1; }
OUT=$(mktemp -d /tmp/hoptrace-parents.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

K=()
if [ ${#MODELS[@]} -gt 0 ]; then
  expr="${MODELS[0]}"
  for m in "${MODELS[@]:1}"; do expr="$expr or $m"; done
  K=(-k "$expr")
fi

cd "$ROOT/tests/integration"
set +e
HOPTRACE_BIN="$BUILD/agent/hoptrace" HOPTRACE_MODEL_RUNS="$RUNS" \
  HOPTRACE_MODEL_REQUESTS="$REQUESTS" HOPTRACE_MODEL_REPORT="$OUT/report.json" \
  nice /usr/bin/python3 -m pytest -p no:cacheprovider -q -rf "${K[@]}" \
  test_propagation_models.py::test_share_of_client_spans_with_the_right_parent \
  > "$OUT/pytest.log" 2>&1
rc=$?
set -e
grep -E "^(FAILED|ERROR)" "$OUT/pytest.log" > "$OUT/failed.txt" || true

/usr/bin/python3 - "$OUT/report.json" "$OUT/failed.txt" "$RUNS" "$REQUESTS" <<'EOF'
import json, os, sys
report, failed, runs, requests = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
data = json.load(open(report)) if os.path.exists(report) else {}
bad = open(failed).read()
print(f"parent accuracy: worst of {runs} runs, {requests} requests per concurrency per run")
print("cell = right / wrong / none (share, count of that run)")
concs = sorted({int(c) for v in data.values() for c in v})
print(f"{'model':<26}" + "".join(f"{'c=' + str(c):<44}" for c in concs))
for name in sorted(data):
    cells = []
    for c in concs:
        rs = data[name].get(str(c), [])
        if not rs:
            cells.append("-")
            continue
        def worst(key, pick):
            r = pick(rs, key=lambda r: r[key] / r["total"])
            return f"{r[key] / r['total']:.3f} ({r[key]})"
        cells.append(f"{worst('right', min)} / {worst('wrong', max)} / {worst('none', max)}")
    mark = "  FAIL" if f"[{name.replace('/', '-')}]" in bad else ""
    print(f"{name:<26}" + "".join(f"{x:<44}" for x in cells) + mark)
EOF
if [ $rc -ne 0 ]; then
  echo "pytest exit $rc; its log:"
  grep -E "^(FAILED|ERROR|E )" "$OUT/pytest.log" | head -40
fi
exit 0
