#!/usr/bin/env bash
# What the benchmark OTLP sink takes on its own: ht_otlp_sink serving on 127.0.0.1, driven by
# its load mode (the project's own OtlpGrpcExporter / OtlpHttpExporter, one per in-flight
# lane, each on its own thread, batches of typical HTTP spans).
#
#   tests/bench/otlp_export.sh [--seconds 5] [--in-flight 1,2,4,8] [--rounds 3]
#                              [--protocols grpc,http/protobuf] [--batch 512] [--gzip]
#                              [--parse wire|full]
#
# Runs are interleaved (round, then in-flight, then protocol), so drift and neighbours' load
# spread over every cell instead of biasing one; each cell reports the median and the range
# over rounds. Besides spans/s accepted (bounded by whichever of sink and load generator runs
# out of CPU first), it reports the sink's own CPU per span from /proc, which gives its
# capacity per core independently of the load generator sharing the machine. --parse: how
# the sink reads each request (wire, its default: the wire format walked and counted; full:
# libprotobuf, as a collector does).
#
# No root needed; all traffic on 127.0.0.1. Exits 0 when the measurements were taken.
# Aggregation uses Debian's /usr/bin/python3 (standard library only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SINK="${HT_OTLP_SINK:-$ROOT/build/tests/bench/ht_otlp_sink}"
SECONDS_PER_RUN=5
WARMUP=1
IN_FLIGHT="1,2,4,8"
PROTOCOLS="grpc,http/protobuf"
ROUNDS=3
BATCH=512
GZIP=0
KEEP=0
SINK_PARSE=wire
PY=/usr/bin/python3

usage() {
  cat <<EOF
usage: $0 [options]
  --seconds S        measured seconds per run (default $SECONDS_PER_RUN)
  --warmup S         seconds per run not counted, before (default $WARMUP)
  --in-flight LIST   comma list of lanes (default $IN_FLIGHT)
  --protocols LIST   grpc,http/protobuf (default $PROTOCOLS)
  --rounds N         runs per cell, interleaved (default $ROUNDS)
  --batch N          spans per export (default $BATCH)
  --gzip             compress (gRPC message compression, HTTP Content-Encoding: gzip)
  --sink PATH        ht_otlp_sink binary (default \$HT_OTLP_SINK or build/tests/bench/ht_otlp_sink)
  --parse MODE       the sink's --parse: wire (default) or full
  --keep             keep the temp directory (sink log, stats, per-run JSON)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --in-flight) IN_FLIGHT="$2"; shift 2 ;;
    --protocols) PROTOCOLS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --batch) BATCH="$2"; shift 2 ;;
    --gzip) GZIP=1; shift ;;
    --sink) SINK="$2"; shift 2 ;;
    --parse) SINK_PARSE="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "otlp_export: $*" >&2; exit 1; }
# shellcheck source=tests/bench/otlp_sink.sh
. "$ROOT/tests/bench/otlp_sink.sh"
log() { echo "[otlp_export] $*" >&2; }

[ -x "$SINK" ] || die "$SINK missing: cmake --build build --target ht_otlp_sink"
[ -x "$PY" ] || die "$PY missing (Debian's python3)"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds needs a whole number > 0"
IFS=, read -r -a LANES <<<"$IN_FLIGHT"
IFS=, read -r -a PROTOS <<<"$PROTOCOLS"
for p in "${PROTOS[@]}"; do
  case "$p" in grpc|http/protobuf) ;; *) die "unknown protocol '$p'" ;; esac
done

HZ=$(getconf CLK_TCK)
TMP=$(mktemp -d /tmp/hoptrace-otlp-export.XXXXXX)
SINK_PID=""

# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$SINK_PID" ] && kill -0 "$SINK_PID" 2>/dev/null; then
    kill -TERM "$SINK_PID" 2>/dev/null || true
    wait "$SINK_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

cpu_ticks() {  # utime+stime of one pid, all threads
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
machine_busy() {  # busy jiffies of all cpus
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
sink_spans() {
  "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["spans"])' "$TMP/sink.json"
}

start_otlp_sink
log "sink $SINK_PID (--parse $SINK_PARSE): grpc 127.0.0.1:$SINK_GRPC_PORT, http 127.0.0.1:$SINK_HTTP_PORT"

: >"$TMP/runs.jsonl"
gz=()
[ "$GZIP" = 1 ] && gz=(--gzip)
for ((r = 1; r <= ROUNDS; r++)); do
  for n in "${LANES[@]}"; do
    for p in "${PROTOS[@]}"; do
      if [ "$p" = grpc ]; then ep="http://127.0.0.1:$SINK_GRPC_PORT"; else ep="http://127.0.0.1:$SINK_HTTP_PORT/v1/traces"; fi
      # The sink's stats file is rewritten every 200 ms: wait for the last run's final count.
      sleep 0.5
      s0=$(sink_spans); c0=$(cpu_ticks "$SINK_PID"); b0=$(machine_busy); t0=$(date +%s.%N)
      out=$("$SINK" load --protocol "$p" --endpoint "$ep" --in-flight "$n" --batch "$BATCH" \
        --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" "${gz[@]}" 2>>"$TMP/load.log") ||
        log "round $r $p in-flight $n: some exports failed (see the table)"
      t1=$(date +%s.%N); c1=$(cpu_ticks "$SINK_PID"); b1=$(machine_busy)
      sleep 0.5
      s1=$(sink_spans)
      log "round $r $p in-flight $n: $(tail -1 "$TMP/load.log" | sed 's/^load //')"
      # The sink's CPU and span count cover the whole run (warm-up included): per span they
      # still compare, and the load's own spans/s is for the measured window only.
      "$PY" -c 'import json, sys
d = json.loads(sys.argv[1])
d.update(round=int(sys.argv[2]), sink_spans=int(sys.argv[4]) - int(sys.argv[3]),
         sink_cpu_s=(int(sys.argv[6]) - int(sys.argv[5])) / int(sys.argv[9]),
         wall_s=float(sys.argv[8]) - float(sys.argv[7]),
         machine_busy_s=(int(sys.argv[11]) - int(sys.argv[10])) / int(sys.argv[9]))
print(json.dumps(d))' "$out" "$r" "$s0" "$s1" "$c0" "$c1" "$t0" "$t1" "$HZ" "$b0" "$b1" >>"$TMP/runs.jsonl"
    done
  done
done

kill -TERM "$SINK_PID"
wait "$SINK_PID" || true
SINK_PID=""

"$PY" - "$TMP/runs.jsonl" "$(nproc)" "$(uptime | sed 's/.*load average: //')" "$BATCH" \
  "$GZIP" "$SECONDS_PER_RUN" "$ROUNDS" "$(cat "$TMP/sink.out")" <<'EOF'
import json, statistics, sys

runs_file, ncpu, loadavg, batch, gzip, seconds, rounds, final = sys.argv[1:9]
runs = [json.loads(l) for l in open(runs_file) if l.strip()]
cells = {}
for r in runs:
    cells.setdefault((r["protocol"], r["in_flight"]), []).append(r)

def med(xs):
    return statistics.median(xs) if xs else float("nan")

print()
print(f"ht_otlp_sink capacity: batch {batch} spans, gzip {'on' if gzip == '1' else 'off'}, "
      f"{seconds} s per run, {rounds} rounds interleaved; {ncpu} cpus; load average at the end "
      f"{loadavg}")
hdr = (f"{'protocol':<14} {'lanes':>5} {'spans/s (median)':>16} {'min..max':>17} "
       f"{'spread':>6} {'p50 ms':>7} {'p99 ms':>7} {'sink us/span':>12} {'sink spans/s/core':>17} "
       f"{'sink cpu%':>9} {'load cpu%':>9} {'mach%':>5} {'failed':>6}")
print(hdr)
print("-" * len(hdr))
for (proto, lanes), rs in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1])):
    sps = [r["spans_per_s"] for r in rs]
    us = [1e6 * r["sink_cpu_s"] / r["sink_spans"] for r in rs if r["sink_spans"]]
    m = med(sps)
    spread = (max(sps) - min(sps)) / m * 100 if m else float("nan")
    sink_pct = med([100 * r["sink_cpu_s"] / r["wall_s"] for r in rs])
    mach = med([100 * r["machine_busy_s"] / r["wall_s"] / int(ncpu) for r in rs])
    print(f"{proto:<14} {lanes:>5} {m:>16.0f} {min(sps):>8.0f}..{max(sps):<8.0f} {spread:>5.0f}% "
          f"{med([r['latency_ms_p50'] for r in rs]):>7.2f} "
          f"{med([r['latency_ms_p99'] for r in rs]):>7.2f} {med(us):>12.2f} "
          f"{1e6 / med(us) if us else 0:>17.0f} {sink_pct:>8.0f}% "
          f"{med([r['client_cpu_pct'] for r in rs]):>8.0f}% {mach:>5.0f} "
          f"{sum(r['failed_exports'] for r in rs):>6}")
print()
print("spans/s: spans the load mode's exporters saw accepted in the measured window, summed over")
print("  lanes; min..max and spread ((max-min)/median) over rounds. p50/p99: one export's")
print("  latency (translate + serialize [+ gzip] + send + reply). sink us/span: the sink's CPU")
print("  (all threads, whole run) per span it counted; spans/s/core = 1e6 / that: what the sink")
print("  would take per core it had to itself. sink/load cpu%: of one core. mach%: busy share of")
print("  the whole machine during the run (the rest is other tenants when it exceeds sink+load).")
print(f"sink final counts: {final}")
EOF
