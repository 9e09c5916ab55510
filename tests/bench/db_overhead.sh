#!/usr/bin/env bash
# Cost of hoptrace per database request: pgbench against a private
# PostgreSQL, redis-benchmark against a private redis-server, each run A/B/A:
#   A  no agent
#   B  hoptrace selecting only the server (--pid: postgres' postmaster, whose
#      backends fork after the agent attached; redis-server), --output jsonl
#      to a temp file, read-only (--no-propagation)
#   A  no agent again, to expose drift
# and prints requests/s, the ratio of B to the mean of the A runs, and the
# spans written against the requests made.
#
#   sudo tests/bench/db_overhead.sh [--duration 10] [--clients 4]
#
# Servers listen on 127.0.0.1 on free ports, in a temp dir; PostgreSQL runs
# as the postgres user (Debian's postgresql-15; scripts/setup.sh --tests).
# No pass/fail threshold: exits 0 when the measurements were taken.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
AGENT="${HOPTRACE_BIN:-$ROOT/build/agent/hoptrace}"
PG_BIN=/usr/lib/postgresql/15/bin
DURATION=10
CLIENTS=4

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    *) echo "usage: sudo $0 [--duration S] [--clients N]" >&2; exit 2 ;;
  esac
done

WORK="$(mktemp -d /tmp/ht-dbbench.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

AGENT_PID=""
start_agent() {  # start_agent OUT PID...
  local out="$1"; shift
  local args=()
  for p in "$@"; do args+=(--pid "$p"); done
  "$AGENT" run --output jsonl --output-file "$out" --no-propagation "${args[@]}" \
    2>"$WORK/agent.log" &
  AGENT_PID=$!
  for _ in $(seq 200); do
    grep -q "hoptrace ready" "$WORK/agent.log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "agent not ready:" >&2; cat "$WORK/agent.log" >&2; exit 1
}
stop_agent() {
  kill -INT "$AGENT_PID"; wait "$AGENT_PID" || true
}

# --- PostgreSQL ---------------------------------------------------------------
PG_PORT="$(free_port)"
mkdir "$WORK/pg"; chown postgres:postgres "$WORK/pg"
AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups --)
"${AS_PG[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust --no-sync >/dev/null
"${AS_PG[@]}" "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$WORK/pg" -c fsync=off -c ssl=off >"$WORK/pg.log" 2>&1 &
PG_PID=$!; PIDS+=("$PG_PID")
until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do sleep 0.1; done
PGB=(pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres)
"${PGB[@]}" -i -q -s 1 postgres >/dev/null 2>&1

pgbench_tps() {  # select-only, one prepared statement per transaction
  "${PGB[@]}" -n -S -M prepared -c "$CLIENTS" -j 1 -T "$DURATION" postgres 2>/dev/null |
    awk '/^tps/ {print int($3)}' | head -1
}

# --- Redis ----------------------------------------------------------------------
REDIS_PORT="$(free_port)"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
  --dir "$WORK" --logfile "$WORK/redis.log" &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
REDIS_REQUESTS=$((DURATION * 20000))

redis_rps() {  # GET and SET, no pipelining: one request per round trip
  redis-benchmark -p "$REDIS_PORT" -c "$CLIENTS" -n "$REDIS_REQUESTS" -t get,set -q 2>/dev/null |
    tr '\r' '\n' | awk '/requests per second/ {sum += $2; n++} END {print int(sum / n)}'
}

ratio() { awk -v b="$1" -v a1="$2" -v a2="$3" 'BEGIN {printf "%.2f", b / ((a1 + a2) / 2)}'; }
spans_in() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

printf "%-10s %10s %10s %10s %8s %12s\n" target "A req/s" "B req/s" "A req/s" "B/A" "spans (B)"

a1=$(pgbench_tps)
start_agent "$WORK/pg.jsonl" "$PG_PID"
b=$(pgbench_tps)
stop_agent
a2=$(pgbench_tps)
printf "%-10s %10s %10s %10s %8s %12s\n" pgbench "$a1" "$b" "$a2" "$(ratio "$b" "$a1" "$a2")" \
  "$(spans_in "$WORK/pg.jsonl")"

a1=$(redis_rps)
start_agent "$WORK/redis.jsonl" "$REDIS_PID"
b=$(redis_rps)
stop_agent
a2=$(redis_rps)
printf "%-10s %10s %10s %10s %8s %12s\n" redis "$a1" "$b" "$a2" "$(ratio "$b" "$a1" "$a2")" \
  "$(spans_in "$WORK/redis.jsonl")"
echo "redis requests in B: $((REDIS_REQUESTS * 2)) (GET + SET); pgbench: tps x ${DURATION}s, one SELECT each"
grep "stats (final)" "$WORK/agent.log" | tail -1 || true
