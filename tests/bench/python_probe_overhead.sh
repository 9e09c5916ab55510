#!/usr/bin/env bash
# What Python function probes (--probe PROGRAM:FILE.py:FUNCTION) cost, in
# one process, rounds without and with the agent alternating:
#   per probed call   (py_probe_target.py:probed, far under the 100 us
#                      threshold: counted in the kernel, never sent)
#   per unprobed call (unprobed(), same file, not named: still trapped, as
#                      every Python call of a probed process is)
#   per bytecode instruction (loop_ns: one turn of an empty for loop; the
#                      interpreter runs its tracing dispatch while attached)
# Prints each round, then the medians and the spread (min..max) of on - off.
#
#   sudo tests/bench/python_probe_overhead.sh [BUILD_DIR] [--calls N] [--rounds R]
# No pass/fail threshold. Uses /usr/bin/python3 (Debian's 3.11, USDT probes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build"
CALLS=20000
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --calls) CALLS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) BUILD="$1"; shift ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "python_probe_overhead: needs root" >&2; exit 1; }
AGENT="$BUILD/agent/hoptrace"
[ -x "$AGENT" ] || { echo "python_probe_overhead: build hoptrace first" >&2; exit 1; }
OUT=$(mktemp -d /tmp/hoptrace-pyprobe-bench.XXXXXX)
SVC="pyprobebench$$"  # a service name of its own: the agent selects this process only
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT
trap "exit 130" INT TERM

mkfifo "$OUT/in"
OTEL_SERVICE_NAME="$SVC" /usr/bin/python3 "$ROOT/tests/bench/py_probe_target.py" \
  <"$OUT/in" >"$OUT/target.txt" &
TARGET_PID=$!
PIDS+=("$TARGET_PID")
exec 3>"$OUT/in"
for _ in $(seq 100); do grep -q ready "$OUT/target.txt" && break; sleep 0.05; done

round() {  # round LABEL: one line of results
  local before
  before=$(wc -l <"$OUT/target.txt")
  echo "$CALLS" >&3
  for _ in $(seq 6000); do
    [ "$(wc -l <"$OUT/target.txt")" -gt "$before" ] && break
    sleep 0.05
  done
  echo "$1 $(tail -1 "$OUT/target.txt")"
}
start_agent() {
  "$AGENT" run --probe "$SVC:py_probe_target.py:probed" --output none 2>"$OUT/agent.log" &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  for _ in $(seq 400); do
    grep -q "probe: pid $TARGET_PID: 1 Python function" "$OUT/agent.log" && return 0
    sleep 0.05
  done
  echo "python_probe_overhead: probes not attached" >&2; cat "$OUT/agent.log" >&2; exit 1
}
stop_agent() { kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; }

round warmup >/dev/null
: >"$OUT/rounds.txt"
for r in $(seq "$ROUNDS"); do
  round off | tee -a "$OUT/rounds.txt"
  start_agent
  round on | tee -a "$OUT/rounds.txt"
  stop_agent
  grep "probes (final)" "$OUT/agent.log" | sed 's/.*probes (final)/  agent: probes (final)/'
done
round off | tee -a "$OUT/rounds.txt"
# on - the mean of the off rounds around it, per call.
/usr/bin/python3 - "$OUT/rounds.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
off = [(float(r[2]), float(r[4])) for r in rows if r[0] == "off"]
on = [(float(r[2]), float(r[4])) for r in rows if r[0] == "on"]
dp = [on[i][0] - (off[i][0] + off[i + 1][0]) / 2 for i in range(len(on))]
du = [on[i][1] - (off[i][1] + off[i + 1][1]) / 2 for i in range(len(on))]
ratio = [on[i][0] / ((off[i][0] + off[i + 1][0]) / 2) for i in range(len(on))]
print(f"probed call:   +{statistics.median(dp):.0f} ns per call (median of {len(dp)} rounds, "
      f"spread {min(dp):.0f}..{max(dp):.0f}), x{statistics.median(ratio):.0f} of an unprobed "
      f"process's call ({statistics.median(o[0] for o in off):.0f} ns)")
print(f"unprobed call: +{statistics.median(du):.0f} ns per call (spread {min(du):.0f}..{max(du):.0f})")
PY
