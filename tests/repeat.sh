#!/usr/bin/env bash
# Flake hunt: clones the current commit into a fresh folder, builds it once,
# runs the whole ctest suite N times and prints, per test, how many of the N
# runs passed (per ctest entry, and per pytest / GoogleTest case inside it).
#   tests/repeat.sh 5 [ctest args...]      # as root
# Too long for CI. Uses Debian's /usr/bin/python3 for the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
shift || true
[ "$(id -u)" -eq 0 ] || { echo "repeat.sh: run as root" >&2; exit 1; }

commit=$(git rev-parse HEAD)
work=$(mktemp -d /tmp/hoptrace-repeat.XXXXXX)
echo "repeat.sh: $n runs of $commit in $work"
git clone -q "$PWD" "$work/src"
git -C "$work/src" checkout -q "$commit"
cd "$work/src"
./scripts/setup.sh --tests >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

for i in $(seq 1 "$n"); do
  start=$(date +%s)
  ctest --test-dir build --output-log "$work/run$i.log" "$@" > "$work/run$i.summary" 2>&1 || true
  echo "run $i: $(grep -E 'tests passed|tests failed' "$work/run$i.summary" | tail -1)" \
       "($(( $(date +%s) - start )) s)"
done

/usr/bin/python3 - "$work" "$n" <<'PY'
import re, sys, collections, pathlib
work, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
passed = collections.Counter()
seen = collections.Counter()
for i in range(1, n + 1):
    log = (work / f"run{i}.log").read_text(errors="replace")
    summ = (work / f"run{i}.summary").read_text(errors="replace")
    # ctest entries: "  1/24 Test  #1: unit.http1_parse_test ....   Passed    0.05 sec"
    for m in re.finditer(r"Test\s+#\d+: (\S+) \.+\**\s*(Passed|Failed|\*\*\*\S+|Exception|Not Run)", summ):
        seen[m.group(1)] += 1
        passed[m.group(1)] += m.group(2) == "Passed"
    # pytest -v lines: "tests/integration/test_x.py::test_y[p] PASSED"
    for m in re.finditer(r"^(\S+\.py::\S+) (PASSED|FAILED|ERROR|SKIPPED)", log, re.M):
        key = m.group(1).split("/")[-1]
        seen[key] += 1
        passed[key] += m.group(2) == "PASSED"
    # GoogleTest: "[       OK ] Suite.Test (3 ms)" / "[  FAILED  ] Suite.Test (3 ms)"
    for m in re.finditer(r"^\[\s+(OK|FAILED)\s+\] (\w+\.\w+) \(", log, re.M):
        seen[m.group(2)] += 1
        passed[m.group(2)] += m.group(1) == "OK"
flaky = sorted(k for k in seen if passed[k] < n)
print(f"\n{len(seen)} tests, {n} runs; not green every time: {len(flaky)}")
print(f"{'test':<90} passed")
for k in sorted(seen, key=lambda k: (passed[k] == n, k)):
    if passed[k] < n or k.startswith(("unit.", "integration.", "fuzz.", "matrix.")):
        print(f"{k:<90} {passed[k]}/{n}")
PY
