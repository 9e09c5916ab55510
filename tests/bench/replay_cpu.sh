#!/usr/bin/env bash
# The agent's userspace CPU per request, every thread (export included), A/B:
# build/tests/bench/ht_replay_bench (nginx keep-alive records through the run
# loop's chain, see replay_bench.cc) run natively, the binaries alternating
# round by round. Where agent_instructions.sh counts instructions (exact, but
# blind to caches), this counts time, so it sees what crosses cores: spans
# built on the run loop and encoded and freed by an export thread.
#
#   tests/bench/replay_cpu.sh [--bench PATH]... [--requests 300000] [--rounds 5]
#                             [--sink otlp-encode|none|jsonl]
#
# Prints per binary the median and [min, max] over rounds of cpu_ns_per_request
# (CLOCK_PROCESS_CPUTIME_ID from the first replayed request until the pipeline
# has shut down). CPU time still moves with what else the machine runs: read
# the spread. No root needed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCHES=()
REQUESTS=300000
ROUNDS=5
SINK=otlp-encode
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) BENCHES+=("$2"); shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --sink) SINK="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ ${#BENCHES[@]} -gt 0 ] || BENCHES=("$ROOT/build/tests/bench/ht_replay_bench")
[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || { echo "--requests: a positive number" >&2; exit 2; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds: a positive number" >&2; exit 2; }
for b in "${BENCHES[@]}"; do
  [ -x "$b" ] || { echo "$b is not executable" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/hoptrace-cpu.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

for r in $(seq 1 "$ROUNDS"); do
  n=${#BENCHES[@]}
  for k in $(seq 0 $((n - 1))); do
    i=$(( (k + r) % n ))  # a rotating order: no binary always runs first
    out=$("${BENCHES[$i]}" --requests "$REQUESTS" --sink "$SINK") ||
      { echo "failed: ${BENCHES[$i]}: $out" >&2; exit 1; }
    cpu=$(sed -n 's/.*"cpu_ns_per_request": \([0-9.]*\).*/\1/p' <<<"$out")
    [ -n "$cpu" ] || { echo "no cpu_ns_per_request from ${BENCHES[$i]}: $out" >&2; exit 1; }
    echo "$cpu" >>"$TMP/$i"
    printf 'round %d  %-52s %8.0f ns/req\n' "$r" "${BENCHES[$i]}" "$cpu"
  done
done
echo
printf '%-52s %-12s %s\n' "bench ($SINK, $REQUESTS requests)" "median" "[min, max] over $ROUNDS rounds"
for i in "${!BENCHES[@]}"; do
  sort -n "$TMP/$i" | awk -v b="${BENCHES[$i]}" '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%-52s %-12.0f [%.0f, %.0f]\n", b, m, v[1], v[NR] }'
done
