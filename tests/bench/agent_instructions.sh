#!/usr/bin/env bash
# The agent's userspace instructions per request, exactly, whatever else the
# machine runs: build/tests/bench/ht_replay_bench (nginx keep-alive records
# through the run loop's chain, see replay_bench.cc) under valgrind's
# callgrind, at two request counts; (Ir(N2) - Ir(N1)) / (N2 - N1) cancels
# start-up and shutdown, and counts every thread (the export consumer too).
#
#   tests/bench/agent_instructions.sh [--bench PATH]... [--requests 20000] [--sink none,jsonl]
#                                     [--profile DIR]
#
# Several --bench binaries (e.g. one built from main in another build dir,
# and this tree's) are measured one after the other; the counts do not
# depend on load, so one run each is enough. --profile DIR keeps each
# callgrind output of the larger run (callgrind_annotate DIR/...).
# No root needed. valgrind: Debian's package (scripts/setup.sh --tests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCHES=()
REQUESTS=20000
SINKS=none,jsonl
PROFILE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) BENCHES+=("$2"); shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --sink) SINKS="$2"; shift 2 ;;
    --profile) PROFILE="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ ${#BENCHES[@]} -gt 0 ] || BENCHES=("$ROOT/build/tests/bench/ht_replay_bench")
[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || { echo "--requests: a positive number" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind missing: scripts/setup.sh --tests" >&2; exit 1; }
TMP=$(mktemp -d /tmp/hoptrace-ins.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
[ -z "$PROFILE" ] || mkdir -p "$PROFILE"

ir_of() {  # bench sink requests out_file [callgrind options]
  local b="$1" s="$2" n="$3" out="$4"
  shift 4
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" "$b" --requests "$n" --sink "$s" \
    >"$out.stdout" 2>"$out.log" || { echo "failed: $b --sink $s --requests $n: $(tail -n 5 "$out.log")" >&2; exit 1; }
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"
}
per_req() { awk -v a="$1" -v z="$2" -v n="$3" 'BEGIN { printf "%.0f", (z - a) / n }'; }

n1=$((REQUESTS / 2))
n2=$REQUESTS
# run loop: the replay loop's thread only (event decoding to span submitted),
# deterministic; all threads: the export consumer too, whose wake-ups (and so
# its count) vary from run to run by a few thousand instructions.
printf '%-52s %-6s %14s %14s\n' "bench" "sink" "run loop/req" "all thr./req"
IFS=, read -r -a sinks <<<"$SINKS"
i=0
for b in "${BENCHES[@]}"; do
  [ -x "$b" ] || { echo "$b is not executable" >&2; exit 1; }
  i=$((i + 1))
  for s in "${sinks[@]}"; do
    toggle=(--toggle-collect='hoptrace::(anonymous namespace)::ReplayRequests*')
    la=$(ir_of "$b" "$s" "$n1" "$TMP/la" "${toggle[@]}")
    lz=$(ir_of "$b" "$s" "$n2" "$TMP/lz" "${toggle[@]}")
    a=$(ir_of "$b" "$s" "$n1" "$TMP/a")
    z=$(ir_of "$b" "$s" "$n2" "$TMP/z")
    printf '%-52s %-6s %14s %14s\n' "$b" "$s" "$(per_req "$la" "$lz" $((n2 - n1)))" \
      "$(per_req "$a" "$z" $((n2 - n1)))"
    [ -z "$PROFILE" ] || cp "$TMP/z" "$PROFILE/callgrind.$i.$s.out"
  done
done
