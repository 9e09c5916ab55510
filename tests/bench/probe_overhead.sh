#!/usr/bin/env bash
# What function probes (--probe) cost, probes off and on in one run:
#   1. per call: N calls of a trivial function (probed) and of another one
#      (not probed) in the same process, ns per call, without the agent and
#      with `--probe probe_bench_target:Bench::probed` (calls are far under
#      the 100 us threshold: counted in the kernel, never sent);
#   2. per request: wrk against a keep-alive server whose handler makes 4
#      probed calls (Bench::handle -> parse, lookup, render), A/B/A: no
#      agent, agent with --probe 'probe_bench_target:Bench::*', no agent.
#
#   sudo tests/bench/probe_overhead.sh [BUILD_DIR] [--calls N] [--seconds S]
# Uses: wrk (scripts/setup.sh --tests). No pass/fail threshold.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$ROOT/build"
CALLS=2000000
SECONDS_PER_RUN=5
while [ $# -gt 0 ]; do
  case "$1" in
    --calls) CALLS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    *) BUILD="$1"; shift ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "probe_overhead: needs root" >&2; exit 1; }
AGENT="$BUILD/agent/hoptrace"
TARGET="$BUILD/tests/bench/probe_bench_target"
[ -x "$AGENT" ] && [ -x "$TARGET" ] || { echo "probe_overhead: build hoptrace and probe_bench_target" >&2; exit 1; }
OUT=$(mktemp -d /tmp/hoptrace-probe-bench.XXXXXX)
PIDS=()
cleanup() {
  # TERM: background jobs of a script ignore INT; the agent detaches on either.
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$OUT"
}
trap cleanup EXIT
trap "exit 130" INT TERM  # cleanup still runs (EXIT)

start_agent() {  # start_agent PROBE...: waits until ready
  local args=()
  for p in "$@"; do args+=(--probe "$p"); done
  "$AGENT" run "${args[@]}" --output none 2>"$OUT/agent.log" &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  for _ in $(seq 200); do grep -q "hoptrace ready" "$OUT/agent.log" && return 0; sleep 0.05; done
  echo "probe_overhead: agent not ready" >&2; cat "$OUT/agent.log" >&2; exit 1
}
stop_agent() { kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; }
wait_attached() {  # wait_attached PID
  for _ in $(seq 200); do grep -q "probe: pid $1: .* attached" "$OUT/agent.log" && return 0; sleep 0.05; done
  echo "probe_overhead: probes not attached in $1" >&2; cat "$OUT/agent.log" >&2; exit 1
}
calls() {  # calls [attach]: prints "probed_ns X unprobed_ns Y"
  local fifo="$OUT/go"
  rm -f "$fifo"; mkfifo "$fifo"
  "$TARGET" calls "$CALLS" <"$fifo" >"$OUT/calls.txt" &
  local pid=$!
  exec 3>"$fifo"
  [ "${1:-}" = attach ] && wait_attached "$pid"
  echo go >&3; exec 3>&-
  wait "$pid"
  cat "$OUT/calls.txt"
}

echo "== per call ($CALLS calls) =="
off=$(calls)
start_agent "probe_bench_target:Bench::probed"
on=$(calls attach)
stop_agent
grep "probes (final)" "$OUT/agent.log" | sed 's/.*probes (final)/agent: probes (final)/'
read -r _ off_p _ off_u <<<"$off"
read -r _ on_p _ on_u <<<"$on"
awk -v a="$off_p" -v b="$on_p" 'BEGIN { printf "probed call:   off %s ns  on %s ns  (+%.0f ns per call, x%.1f)\n", a, b, b - a, b / a }'
echo "unprobed call: off ${off_u} ns  on ${on_u} ns  (same process, probes attached elsewhere)"

echo "== per request (wrk -t1 -c8 -d${SECONDS_PER_RUN}s, 4 probed calls per request) =="
PORT=$((20000 + RANDOM % 20000))
"$TARGET" serve "$PORT" >"$OUT/serve.txt" &
SERVE_PID=$!
PIDS+=("$SERVE_PID")
for _ in $(seq 100); do grep -q listening "$OUT/serve.txt" && break; sleep 0.05; done
wrk_run() {
  wrk -t1 -c8 -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$PORT/x" >"$OUT/wrk.txt"
  local rps p50
  rps=$(awk '/Requests\/sec/ { print $2 }' "$OUT/wrk.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$OUT/wrk.txt")
  echo "$1: $rps req/s, p50 $p50"
}
wrk_run "A probes off"
start_agent "probe_bench_target:Bench::*"
wait_attached "$SERVE_PID"
wrk_run "B probes on "
stop_agent
grep "probes (final)" "$OUT/agent.log" | sed 's/.*probes (final)/agent: probes (final)/'
wrk_run "A probes off"
