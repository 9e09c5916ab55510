#!/usr/bin/env bash
# End-to-end overhead of hoptrace on a real server under wrk load.
#
#   sudo tests/bench/wrk_overhead.sh [--duration 10] [--connections 16] [--threads 2]
#                                    [--targets small,4k,python] [--bpf-stats] ...
#
# For every target it runs wrk three times, A/B/A (--rounds N: N times):
#   A  baseline, no agent
#   B  hoptrace selecting only the target's processes (--output jsonl to a
#      temp file, so spans are really built and written; or, with
#      --agent-output otlp, exported over OTLP to ht_otlp_sink)
#   A  baseline again, to expose drift (thermal, noisy neighbours)
# and reports requests/s, latency p50/p90/p99 (wrk --latency), the ratios of
# B to the mean of the two baselines, the CPU used by the agent, by the server
# and by wrk, peak RSS of the agent, and spans written vs requests answered
# with the agent's final counters (kernel_lost, ...).
#
# Targets (all listen on 127.0.0.1 on a free port, all started and stopped
# here; nothing else on the machine is selected):
#   small   private nginx (daemon off, master_process on, 1 worker,
#           access_log off, sendfile off) serving a 100-byte static file
#   4k      the same nginx, a 4096-byte static file
#   https   the same nginx over TLS (a certificate made here with the openssl
#           CLI; TLS 1.3, keep-alive), the 100-byte file: the cost of the
#           uprobes on OpenSSL (hoptrace's TLS capture)
#   proxy   the same nginx as a reverse proxy (keep-alive upstream) to a second
#           server of its own serving the 100-byte file: 3 spans per request
#   python  tests/integration/services/http_service.py (stdlib, threaded)
#   node    the smallest Node `http` server (node on PATH)
#
# nginx's workers exist before the agent starts, and `--pid MASTER` only
# covers children forked after the agent attached: by default the agent gets
# --pid for the master and for each worker (--select tree); --select reload
# selects the master only and makes it fork new workers (SIGHUP) instead.
#
# --agent-output otlp starts build/tests/bench/ht_otlp_sink (an OTLP receiver
# that parses, counts and discards) on 127.0.0.1 for the whole run; the agent
# exports to it with OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_PROTOCOL
# (--otlp-protocol grpc or http/protobuf), and the report sets requests answered
# against spans built, exported, received by the sink and dropped.
#
# The agent measured is a copy of the binary taken at start (build/ may be
# rebuilt meanwhile), run without the caller's OTEL_* variables.
#
# --bpf-stats turns on kernel BPF run-time accounting (BPF_ENABLE_STATS, held
# by a helper process: it switches off by itself when that process ends) and
# adds, for B, the time spent inside hoptrace's BPF programs. That accounting
# costs a little itself (two clock reads per program run, for every BPF
# program of the machine), so leave it off for the headline numbers.
#
# No pass/fail threshold: exits 0 when the measurements were taken.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION=10
CONNECTIONS=16
THREADS=2
TARGETS="small,4k"
WARMUP=2
AGENT="${HOPTRACE_BIN:-$ROOT/build/agent/hoptrace}"
AGENT_ARGS=()
BPF_STATS=0
KEEP=0
ROUNDS=1
SELECT=tree
QUIET_WAIT=30
AGENT_OUTPUT=jsonl
OTLP_PROTOCOL=grpc
SINK="${HT_OTLP_SINK:-$ROOT/build/tests/bench/ht_otlp_sink}"
QUIET_PCT=15

usage() {
  cat <<EOF
usage: sudo $0 [options]
  --duration S        seconds per wrk run (default $DURATION)
  --connections N     wrk connections (default $CONNECTIONS)
  --threads N         wrk threads (default $THREADS)
  --targets LIST      comma list of small,4k,https,proxy,python,node (default $TARGETS)
  --warmup S          untimed wrk run before each target's first baseline (default $WARMUP; 0: none)
  --rounds N          repeat the A/B/A triple N times per target (default $ROUNDS)
  --select MODE       what the agent is told to trace for nginx (default $SELECT):
                        tree    --pid master --pid <each running worker>
                        master  --pid master only (workers already running are
                                not picked up by hoptrace today: expect 0 spans)
                        reload  --pid master, then SIGHUP nginx once the agent is
                                ready, so it forks new workers under the agent
                        none    --pid of an idle process this script starts: the
                                programs are attached but trace no server (the
                                cost hoptrace puts on processes it does not trace)
  --agent PATH        hoptrace binary (default \$HOPTRACE_BIN or build/agent/hoptrace)
  --agent-output M    jsonl (default: spans built and written to a temp file), none
                      (spans built, not exported: separates export cost from capture)
                      or otlp (exported to ht_otlp_sink on 127.0.0.1); --output M is the same
  --otlp-protocol P   with otlp: grpc (default) or http/protobuf
  --sink PATH         ht_otlp_sink binary (default \$HT_OTLP_SINK or build/tests/bench/ht_otlp_sink)
  --agent-arg ARG     extra argument for 'hoptrace run' (repeatable, e.g. --agent-arg=--ringbuf-mb=32)
  --quiet-wait S      before each run, wait up to S s for the machine to be idle
                      (< $QUIET_PCT% busy over 1 s; default $QUIET_WAIT, 0: don't wait)
  --bpf-stats         also measure time spent in hoptrace's BPF programs (see header)
  --keep              keep the temp directory (configs, wrk outputs, spans, agent logs)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --duration=*) DURATION="${1#*=}"; shift ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --connections=*) CONNECTIONS="${1#*=}"; shift ;;
    --threads) THREADS="$2"; shift 2 ;;
    --threads=*) THREADS="${1#*=}"; shift ;;
    --targets) TARGETS="$2"; shift 2 ;;
    --targets=*) TARGETS="${1#*=}"; shift ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --warmup=*) WARMUP="${1#*=}"; shift ;;
    --agent) AGENT="$2"; shift 2 ;;
    --agent=*) AGENT="${1#*=}"; shift ;;
    --agent-output) AGENT_OUTPUT="$2"; shift 2 ;;
    --agent-output=*) AGENT_OUTPUT="${1#*=}"; shift ;;
    --output) AGENT_OUTPUT="$2"; shift 2 ;;
    --output=*) AGENT_OUTPUT="${1#*=}"; shift ;;
    --otlp-protocol) OTLP_PROTOCOL="$2"; shift 2 ;;
    --otlp-protocol=*) OTLP_PROTOCOL="${1#*=}"; shift ;;
    --sink) SINK="$2"; shift 2 ;;
    --sink=*) SINK="${1#*=}"; shift ;;
    --agent-arg) AGENT_ARGS+=("$2"); shift 2 ;;
    --agent-arg=*) AGENT_ARGS+=("${1#*=}"); shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --rounds=*) ROUNDS="${1#*=}"; shift ;;
    --select) SELECT="$2"; shift 2 ;;
    --select=*) SELECT="${1#*=}"; shift ;;
    --quiet-wait) QUIET_WAIT="$2"; shift 2 ;;
    --quiet-wait=*) QUIET_WAIT="${1#*=}"; shift ;;
    --bpf-stats) BPF_STATS=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "wrk_overhead: $*" >&2; exit 1; }
# shellcheck source=tests/bench/otlp_sink.sh
. "$ROOT/tests/bench/otlp_sink.sh"
log() { echo "[wrk_overhead] $*" >&2; }

for v in DURATION CONNECTIONS THREADS WARMUP ROUNDS QUIET_WAIT; do
  opt=${v,,}
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "--${opt//_/-} needs a whole number"
done
[ "$DURATION" -gt 0 ] || die "--duration must be > 0"
[ "$ROUNDS" -gt 0 ] || die "--rounds must be > 0"
case "$SELECT" in tree|master|reload|none) ;; *) die "--select: tree, master, reload or none" ;; esac
case "$AGENT_OUTPUT" in jsonl|none|otlp) ;; *) die "--agent-output: jsonl, none or otlp" ;; esac
case "$OTLP_PROTOCOL" in grpc|http/protobuf) ;; *) die "--otlp-protocol: grpc or http/protobuf" ;; esac
[ "$(id -u)" -eq 0 ] || die "needs root (BPF): run with sudo"
command -v wrk >/dev/null || die "wrk not found: run scripts/setup.sh --tests"
command -v nginx >/dev/null || die "nginx not found: run scripts/setup.sh --tests (nginx-light)"
command -v curl >/dev/null || die "curl not found: run scripts/setup.sh --tests"
command -v python3 >/dev/null || die "python3 not found"
[ -x "$AGENT" ] || die "agent binary $AGENT missing: cmake --build build --target hoptrace"
if [ "$AGENT_OUTPUT" = otlp ]; then
  [ -x "$SINK" ] || die "$SINK missing: cmake --build build --target ht_otlp_sink"
fi
IFS=, read -r -a TARGET_LIST <<<"$TARGETS"
for t in "${TARGET_LIST[@]}"; do
  case "$t" in small|4k|https|proxy|python|node) ;;
    *) die "unknown target '$t' (small, 4k, https, proxy, python, node)" ;; esac
done

HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
TMP=$(mktemp -d /tmp/hoptrace-wrk.XXXXXX)
RESULTS="$TMP/results.tsv"
: >"$RESULTS"

# Every B runs the same agent even if someone rebuilds build/ meanwhile: a
# private copy (the BPF objects are embedded in it).
AGENT_SRC="$AGENT"
AGENT="$TMP/hoptrace"
cp "$AGENT_SRC" "$AGENT"
AGENT_ID="$("$AGENT" --version 2>/dev/null | head -1), sha256 $(sha256sum "$AGENT" | cut -c1-12), built $(date -r "$AGENT_SRC" '+%F %T')"
GIT_ID=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "?")

NGINX_PID="" PY_PID="" NODE_PID="" AGENT_PID="" WRK_PID="" STATS_PID="" SINK_PID="" IDLE_PID=""
OUR_PROG_IDS=""  # every BPF program id our agents held (checked gone at the end)

# Stops one process we started, by pid: polite signal, then KILL.
stop_pid() {
  local pid="$1" sig="$2" secs="${3:-10}"
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid ignored SIG$sig for ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WRK_PID" ]; then  # the subshell around wrk, and wrk itself
    for c in $(children_of "$WRK_PID"); do kill -TERM "$c" 2>/dev/null || true; done
    stop_pid "$WRK_PID" TERM 5
  fi
  stop_pid "$AGENT_PID" INT 20
  stop_pid "$PY_PID" TERM 5
  stop_pid "$NODE_PID" TERM 5
  stop_pid "$NGINX_PID" QUIT 10  # graceful: master stops its workers
  stop_pid "$STATS_PID" TERM 5
  stop_pid "$SINK_PID" TERM 10
  stop_pid "$IDLE_PID" TERM 5
  if [ "$KEEP" = 1 ]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM


wait_http() {  # url timeout_s pid
  local url="$1" secs="$2" pid="$3"
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url" || true)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# utime+stime of one pid, in clock ticks (0 when it is gone).
cpu_ticks() {
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# Sum over pids.
cpu_ticks_sum() {
  local s=0 p
  for p in "$@"; do s=$((s + $(cpu_ticks "$p"))); done
  echo "$s"
}
# busy jiffies of the whole machine (all cpus; idle and iowait excluded).
machine_busy() {
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
# Other tenants skew every number: wait (bounded) until the machine is idle.
wait_quiet() {
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local b0 b1 pct waited=0
  while :; do
    b0=$(machine_busy)
    sleep 1
    b1=$(machine_busy)
    pct=$(( 100 * (b1 - b0) / HZ / NCPU ))
    [ "$pct" -lt "$QUIET_PCT" ] && return 0
    waited=$((waited + 1))
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
      log "machine still ${pct}% busy after ${QUIET_WAIT}s: measuring anyway (see other%)"
      return 0
    fi
    [ "$waited" = 1 ] && log "machine ${pct}% busy (not us): waiting up to ${QUIET_WAIT}s"
  done
}
# Context switches (voluntary + involuntary) of every thread of pid.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
children_of() {
  cat "/proc/$1/task/$1/children" 2>/dev/null || true
}
ht_prog_ids() {  # ids of every ht_ BPF program loaded on the machine right now
  bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p.get("name", "").startswith("ht_"):
        print(p["id"])' 2>/dev/null || true
}
# BPF program ids held open by pid (its fdinfo names them).
prog_ids_of() {
  grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{ print $2 }' | sort -un | tr '\n' ' '
}
# Prints "run_cnt run_time_ns" summed over the given program ids; with
# --detail, one "name run_cnt run_time_ns" line per program instead.
bpf_prog_time() {
  local detail=0
  [ "$1" = --detail ] && { detail=1; shift; }
  bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
detail, ids = sys.argv[1] == "1", {int(x) for x in sys.argv[2:]}
cnt = ns = 0
for p in json.load(sys.stdin):
    if p["id"] in ids:
        if detail:
            print(p.get("name", "?"), p.get("run_cnt", 0), p.get("run_time_ns", 0))
        cnt += p.get("run_cnt", 0); ns += p.get("run_time_ns", 0)
if not detail:
    print(cnt, ns)' "$detail" "$@" 2>/dev/null || echo "0 0"
}

# ---- servers ---------------------------------------------------------------

start_nginx() {
  local dir="$TMP/nginx"
  mkdir -p "$dir/www" "$dir/tmp"
  # Workers run as nginx's unprivileged user: they must reach the files.
  chmod 755 "$TMP" "$dir" "$dir/www"
  # 100 and 4096 bytes of body, ending in a newline.
  python3 -c 'import sys; open(sys.argv[1], "w").write("x" * 99 + "\n")' "$dir/www/small.txt"
  python3 -c 'import sys; open(sys.argv[1], "w").write("y" * 4095 + "\n")' "$dir/www/4k.txt"
  NGINX_PORT=$(free_port)
  NGINX_BACKEND_PORT=$(free_port)
  NGINX_TLS_PORT=$(free_port)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || die "openssl could not make a certificate"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile off;              # bodies go through write/writev, where hoptrace sees them
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  default_type text/plain;
  # proxy target: /proxy/ goes through a keep-alive upstream to a second
  # server of the same nginx (the backend costs as little as a server can).
  upstream backend {
    server 127.0.0.1:$NGINX_BACKEND_PORT;
    keepalive 16;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $dir/www;
    location / { }
    location /proxy/ {
      proxy_pass http://backend/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
  server {
    listen 127.0.0.1:$NGINX_BACKEND_PORT;
    root $dir/www;
    location / { }
  }
  server {
    listen 127.0.0.1:$NGINX_TLS_PORT ssl;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    ssl_protocols TLSv1.3;
    root $dir/www;
    location / { }
  }
}
EOF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
  NGINX_PID=$!
  wait_http "http://127.0.0.1:$NGINX_PORT/small.txt" 15 "$NGINX_PID" ||
    die "nginx did not come up on 127.0.0.1:$NGINX_PORT: $(tail -n 5 "$dir/error.log" "$dir/stdout.log" 2>/dev/null)"
  local workers
  workers=$(children_of "$NGINX_PID")
  [ -n "$workers" ] || die "nginx master $NGINX_PID has no worker"
  log "nginx master $NGINX_PID (workers: $workers) on 127.0.0.1:$NGINX_PORT"
}

start_python() {
  PY_PORT=$(free_port)
  python3 -u "$ROOT/tests/integration/services/http_service.py" --host 127.0.0.1 \
    --port "$PY_PORT" >"$TMP/python.log" 2>&1 &
  PY_PID=$!
  wait_http "http://127.0.0.1:$PY_PORT/" 15 "$PY_PID" ||
    die "python service did not come up: $(tail -n 5 "$TMP/python.log")"
  log "python service $PY_PID on 127.0.0.1:$PY_PORT"
}

# The smallest Node http server: the runtime's own cost per request.
start_node() {
  NODE_PORT=$(free_port)
  node -e '
const http = require("http");
http.createServer((req, res) => {
  res.writeHead(200, {"Content-Type": "text/plain", "Content-Length": "3"});
  res.end("ok\n");
}).listen(+process.argv[1], "127.0.0.1", () => console.log("listening"));' "$NODE_PORT" \
    >"$TMP/node.log" 2>&1 &
  NODE_PID=$!
  wait_http "http://127.0.0.1:$NODE_PORT/" 15 "$NODE_PID" ||
    die "node service did not come up: $(tail -n 5 "$TMP/node.log")"
  log "node service $NODE_PID on 127.0.0.1:$NODE_PORT ($(node --version))"
}

# One OTLP sink for the whole run (gRPC and HTTP ports both open); its counts
# only grow, so each B reads them before and after.
start_sink() {
  start_otlp_sink
  if [ "$OTLP_PROTOCOL" = grpc ]; then
    SINK_ENDPOINT="http://127.0.0.1:$SINK_GRPC_PORT"
  else
    SINK_ENDPOINT="http://127.0.0.1:$SINK_HTTP_PORT"  # the agent appends /v1/traces
  fi
  log "ht_otlp_sink $SINK_PID: grpc 127.0.0.1:$SINK_GRPC_PORT, http 127.0.0.1:$SINK_HTTP_PORT"
}
# "spans bytes" the sink has counted so far. Its stats file is rewritten every
# 200 ms: callers wait that long after the last export before reading.
sink_counts() {
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["spans"], d["bytes"])' \
    "$TMP/sink.json"
}

# ---- agent -----------------------------------------------------------------

start_agent() {  # spans_file log_file pid...
  local spans="$1" alog="$2" p
  shift 2
  local sel=()
  for p in "$@"; do sel+=(--pid "$p"); done
  local outopt=(--output "$AGENT_OUTPUT")
  [ "$AGENT_OUTPUT" = jsonl ] && outopt+=(--output-file "$spans")
  local otlp_env=()
  [ "$AGENT_OUTPUT" = otlp ] &&
    otlp_env=("OTEL_EXPORTER_OTLP_ENDPOINT=$SINK_ENDPOINT" "OTEL_EXPORTER_OTLP_PROTOCOL=$OTLP_PROTOCOL")
  # OTEL_* variables of the caller would change exporters, sampling, queue
  # sizes: the agent runs without them, so runs compare.
  local scrub=() v
  for v in $(compgen -e | grep '^OTEL_' || true); do scrub+=(-u "$v"); done
  env "${scrub[@]}" "${otlp_env[@]}" "$AGENT" run "${sel[@]}" "${outopt[@]}" "${AGENT_ARGS[@]}" \
    >/dev/null 2>"$alog" &
  AGENT_PID=$!
  AGENT_T0=$(date +%s.%N)
  log "agent $AGENT_PID: ${sel[*]}"
  for ((i = 0; i < 300; i++)); do
    if grep -q "hoptrace ready" "$alog" 2>/dev/null; then
      AGENT_PROG_IDS=$(prog_ids_of "$AGENT_PID")
      OUR_PROG_IDS="$OUR_PROG_IDS $AGENT_PROG_IDS"
      return 0
    fi
    kill -0 "$AGENT_PID" 2>/dev/null || { AGENT_PID=""; die "agent exited early: $(tail -n 20 "$alog")"; }
    sleep 0.1
  done
  die "agent not ready in 30s: $(tail -n 20 "$alog")"
}

# SIGHUP to the nginx master: new workers, forked now, old ones leave once
# idle. Returns when every worker is new and nginx answers.
reload_nginx() {  # url
  local old new w fresh
  old=" $(children_of "$NGINX_PID") "
  kill -HUP "$NGINX_PID"
  for ((i = 0; i < 200; i++)); do
    sleep 0.1
    new=$(children_of "$NGINX_PID")
    [ -n "$new" ] || continue
    fresh=1
    for w in $new; do [[ "$old" == *" $w "* ]] && fresh=0; done
    [ "$fresh" = 1 ] && break
  done
  [ "$fresh" = 1 ] || die "nginx reload: old workers still there after 20s"
  wait_http "$1" 10 "$NGINX_PID" || die "nginx not answering after reload"
  log "nginx reloaded: workers now $new"
}

# Waits (up to 10 s) until the agent's CPU time stops growing: it has caught
# up with what the kernel produced during the run.
wait_agent_idle() {
  local prev cur
  prev=$(cpu_ticks "$AGENT_PID")
  for ((i = 0; i < 20; i++)); do
    sleep 0.5
    cur=$(cpu_ticks "$AGENT_PID")
    [ "$cur" = "$prev" ] && return 0
    prev=$cur
  done
}

# ---- one wrk run ------------------------------------------------------------

# wrk run, with its CPU time (the subshell's `times`: children = wrk only).
run_wrk() {  # url out_file seconds
  ( wrk -t"$THREADS" -c"$CONNECTIONS" -d"$3s" --latency "$1" >"$2" 2>&1; times >"$2.times" ) &
  WRK_PID=$!
  wait "$WRK_PID" || true
  WRK_PID=""
}

# Seconds of CPU (user+sys of the children line of `times`).
wrk_cpu_seconds() {
  sed -n 2p "$1" | awk '
    function s(t,  m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
    { printf "%.2f", s($1) + s($2) }'
}

# Latency in wrk's notation (123.45us, 1.20ms, 2.00s) -> milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}

# Runs one phase and appends one line to $RESULTS.
phase() {  # target round label url server_pid
  local target="$1" round="$2" label="$3" url="$4" spid="$5"
  local tag="$target-r$round"
  local out="$TMP/wrk-$tag-$label.txt" spans="$TMP/spans-$tag.jsonl" alog="$TMP/agent-$tag.log"
  local agent_cpu="-" agent_pct="-" agent_start="-" hwm="-" nspans="-" bytes_span="-"
  local kernel_lost="-" final="-" bpf_pct="-" bpf_ns_ev="-"
  local srv_pids=() srv0 srv1 busy0 busy1 a0=0 amid=0 a1=0 b0="0 0" b1="0 0" t0 t1 c0 n0 c1 n1
  local agent_win=0 cs0=0 cs1=0 agent_cs="-"
  local sink_spans="-" sink_cpu="-" sink0="0 0" sink_c0=0

  wait_quiet
  if [ "$label" = B ]; then
    if [ "$AGENT_OUTPUT" = otlp ]; then
      sink0=$(sink_counts)
      sink_c0=$(cpu_ticks "$SINK_PID")
    fi
    if [ "$SELECT" = none ]; then
      if [ -z "$IDLE_PID" ]; then
        sleep 100000 &
        IDLE_PID=$!
      fi
      start_agent "$spans" "$alog" "$IDLE_PID"
    elif [ "$spid" = "$NGINX_PID" ] && [ "$SELECT" = tree ]; then
      # shellcheck disable=SC2046
      start_agent "$spans" "$alog" "$spid" $(children_of "$spid")
    else
      start_agent "$spans" "$alog" "$spid"
    fi
    agent_start=$(awk -v t0="$AGENT_T0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f", t1 - t0 }')
    [ "$spid" = "$NGINX_PID" ] && [ "$SELECT" = reload ] && reload_nginx "$url"
    a0=$(cpu_ticks "$AGENT_PID")
    cs0=$(ctx_switches "$AGENT_PID")
    # shellcheck disable=SC2086
    [ "$BPF_STATS" = 1 ] && b0=$(bpf_prog_time $AGENT_PROG_IDS)
  fi
  # Other hoptrace agents' programs run on every syscall too (baselines included).
  local foreign
  # shellcheck disable=SC2086
  foreign=$(ht_prog_ids | grep -cvxF -f <(printf '%s\n' $OUR_PROG_IDS 0) || true)
  # shellcheck disable=SC2207  # pids: plain numbers
  srv_pids=("$spid" $(children_of "$spid"))
  srv0=$(cpu_ticks_sum "${srv_pids[@]}")
  busy0=$(machine_busy)
  t0=$(date +%s.%N)
  log "$target $label: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s $url"
  run_wrk "$url" "$out" "$DURATION"
  t1=$(date +%s.%N)
  srv1=$(cpu_ticks_sum "${srv_pids[@]}")
  busy1=$(machine_busy)
  local wall
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')

  if [ "$label" = B ]; then
    amid=$(cpu_ticks "$AGENT_PID")
    agent_win=$(awk -v a="$a0" -v b="$amid" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
    if [ "$BPF_STATS" = 1 ]; then
      # shellcheck disable=SC2086
      b1=$(bpf_prog_time $AGENT_PROG_IDS)
      # shellcheck disable=SC2086
      bpf_prog_time --detail $AGENT_PROG_IDS >"$TMP/bpf-$tag.txt"
    fi
    wait_agent_idle
    a1=$(cpu_ticks "$AGENT_PID")
    cs1=$(ctx_switches "$AGENT_PID")
    agent_cs=$(awk -v a="$cs0" -v b="$cs1" -v w="$DURATION" 'BEGIN { printf "%.0f", (b - a) / w }')
    hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$AGENT_PID/status")
    stop_pid "$AGENT_PID" INT 30
    AGENT_PID=""
    agent_cpu=$(awk -v a="$a0" -v b="$a1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
    agent_pct=$(awk -v c="$agent_cpu" -v w="$DURATION" 'BEGIN { printf "%.1f", 100 * c / w }')
    nspans=$(grep -c . "$spans" 2>/dev/null || true)
    [ -n "$nspans" ] || nspans=0
    if [ "$AGENT_OUTPUT" = otlp ]; then
      # The agent has exited: every export it made was answered, so counted.
      sleep 0.5
      local s0 b0s s1 b1s
      read -r s0 b0s <<<"$sink0"
      read -r s1 b1s <<<"$(sink_counts)"
      sink_spans=$((s1 - s0))
      nspans=$sink_spans
      [ "$sink_spans" -gt 0 ] && bytes_span=$(( (b1s - b0s) / sink_spans ))
      sink_cpu=$(awk -v a="$sink_c0" -v b="$(cpu_ticks "$SINK_PID")" -v hz="$HZ" \
        'BEGIN { printf "%.2f", (b - a) / hz }')
    elif [ "$AGENT_OUTPUT" = none ]; then
      nspans="-"
    elif [ "$nspans" -gt 0 ]; then
      bytes_span=$(( $(stat -c %s "$spans") / nspans ))
    fi
    [ "$KEEP" = 1 ] || rm -f "$spans"  # hundreds of MB per run
    final=$(grep -o 'stats (final): .*' "$alog" | tail -1 | sed 's/^stats (final): //')
    [ -n "$final" ] || final="(no final stats line: see agent log)"
    kernel_lost=$(sed -n 's/.*kernel_lost=\([0-9]*\).*/\1/p' <<<"$final")
    [ -n "$kernel_lost" ] || kernel_lost="?"
    if [ "$BPF_STATS" = 1 ]; then
      read -r c0 n0 <<<"$b0"; read -r c1 n1 <<<"$b1"
      bpf_pct=$(awk -v n=$((n1 - n0)) -v w="$wall" 'BEGIN { printf "%.1f", 100 * n / 1e9 / w }')
      bpf_ns_ev=$(awk -v n=$((n1 - n0)) -v c=$((c1 - c0)) 'BEGIN { printf "%.0f", c ? n / c : 0 }')
      echo "$((c1 - c0)) $((n1 - n0))" >"$TMP/bpf-$tag.total"
    fi
  fi

  local rps reqs p50 p90 p99 errors non2xx
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  reqs=$(awk '/requests in/ { print $1 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p90=$(to_ms "$(awk '$1 == "90%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  errors=$(awk '/Socket errors:/ { gsub(/[a-z:,]/, ""); print $1 + $2 + $3 + $4 }' "$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' "$out")
  if [ -z "$rps" ] || [ -z "$reqs" ]; then die "could not parse wrk output $out: $(cat "$out")"; fi
  local wrk_cpu srv_cpu other_pct
  wrk_cpu=$(wrk_cpu_seconds "$out.times")
  srv_cpu=$(awk -v a="$srv0" -v b="$srv1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  # Machine CPU not used by wrk, the server or the agent during the run
  # (other tenants, softirq; drift shows up here).
  other_pct=$(awk -v busy=$((busy1 - busy0)) -v hz="$HZ" -v w="$wall" -v wc="$wrk_cpu" \
    -v sc="$srv_cpu" -v ac="$agent_win" -v n="$NCPU" \
    'BEGIN { o = busy / hz - wc - sc - ac; if (o < 0) o = 0; printf "%.0f", 100 * o / w }')
  local machine_pct
  machine_pct=$(awk -v busy=$((busy1 - busy0)) -v hz="$HZ" -v w="$wall" -v n="$NCPU" \
    'BEGIN { printf "%.0f", 100 * busy / hz / w / n }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$target" "$round" "$label" "$rps" "$reqs" "$p50" "$p90" "$p99" "${errors:-0}" "${non2xx:-0}" \
    "$srv_cpu" "$wrk_cpu" "$agent_cpu" "$agent_pct" "$agent_start" "$hwm" "$nspans" \
    "$bytes_span" "$kernel_lost" "$machine_pct" "$other_pct" "$bpf_pct" "$bpf_ns_ev" "$foreign" "$agent_cs" \
    "$sink_spans" "$sink_cpu" >>"$RESULTS"
  [ "$label" = B ] && printf '%s\t%s\n' "$target r$round" "$final" >>"$TMP/final_stats.tsv"
  return 0
}

run_target() {  # target
  local target="$1" url spid
  case "$target" in
    small) url="http://127.0.0.1:$NGINX_PORT/small.txt"; spid=$NGINX_PID ;;
    4k) url="http://127.0.0.1:$NGINX_PORT/4k.txt"; spid=$NGINX_PID ;;
    https) url="https://127.0.0.1:$NGINX_TLS_PORT/small.txt"; spid=$NGINX_PID ;;
    proxy) url="http://127.0.0.1:$NGINX_PORT/proxy/small.txt"; spid=$NGINX_PID ;;
    python) url="http://127.0.0.1:$PY_PORT/"; spid=$PY_PID ;;
    node) url="http://127.0.0.1:$NODE_PORT/"; spid=$NODE_PID ;;
  esac
  if [ "$WARMUP" -gt 0 ]; then
    log "$target warm-up: ${WARMUP}s"
    run_wrk "$url" "$TMP/wrk-$target-warmup.txt" "$WARMUP"
  fi
  for ((r = 1; r <= ROUNDS; r++)); do
    phase "$target" "$r" A1 "$url" "$spid"
    phase "$target" "$r" B "$url" "$spid"
    phase "$target" "$r" A2 "$url" "$spid"
  done
}

# ---- main --------------------------------------------------------------------

others=$(ht_prog_ids | wc -l)
if [ "$others" -gt 0 ]; then
  log "WARNING: $others ht_ BPF programs of another hoptrace are attached; their"
  log "         tracepoints run on every syscall here, baselines included (column 'foreign')."
fi
if [ "$BPF_STATS" = 1 ]; then
  # Holds a BPF_ENABLE_STATS fd open; accounting ends when this process does.
  python3 -c '
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(16)  # enable_stats.type = BPF_STATS_RUN_TIME (0)
fd = libc.syscall(321, 32, attr, 16)     # __NR_bpf (x86_64), BPF_ENABLE_STATS
if fd < 0:
    print("failed", os.strerror(ctypes.get_errno()), flush=True); sys.exit(1)
print("ok", flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
signal.pause()' >"$TMP/bpfstats.log" 2>&1 &
  STATS_PID=$!
  for ((i = 0; i < 50; i++)); do [ -s "$TMP/bpfstats.log" ] && break; sleep 0.1; done
  grep -q '^ok' "$TMP/bpfstats.log" || die "BPF_ENABLE_STATS failed: $(cat "$TMP/bpfstats.log")"
  log "BPF run-time stats enabled (pid $STATS_PID)"
fi

need_nginx=0 need_py=0 need_node=0
for t in "${TARGET_LIST[@]}"; do
  case "$t" in small|4k|https|proxy) need_nginx=1 ;; python) need_py=1 ;; node) need_node=1 ;; esac
done
[ "$AGENT_OUTPUT" = otlp ] && start_sink
[ "$need_nginx" = 1 ] && start_nginx
[ "$need_py" = 1 ] && start_python
[ "$need_node" = 1 ] && start_node

for t in "${TARGET_LIST[@]}"; do run_target "$t"; done

# ---- report ------------------------------------------------------------------

if ! cmp -s "$AGENT" "$AGENT_SRC"; then
  log "note: $AGENT_SRC was rebuilt during the run; the numbers are for the copy taken at the start"
fi

python3 - "$RESULTS" "$TMP/final_stats.tsv" "$DURATION" "$THREADS" "$CONNECTIONS" "$NCPU" \
  "$AGENT_SRC" "$BPF_STATS" "$SELECT" "$(nginx -v 2>&1 | sed 's/.*: //')" \
  "$(wrk --version 2>&1 | head -1 | awk '{ print $2 }')" "$(uname -r)" "${AGENT_ARGS[*]:-}" \
  "$AGENT_ID" "$GIT_ID" "$AGENT_OUTPUT" "$OTLP_PROTOCOL" <<'EOF'
import statistics, sys

(results, finals, duration, threads, conns, ncpu, agent, bpf_stats, select,
 nginx_v, wrk_v, kernel, agent_args, agent_id, git_id, agent_output, otlp_protocol) = sys.argv[1:18]
cols = ["target", "round", "phase", "rps", "reqs", "p50", "p90", "p99", "errors", "non2xx",
        "srv_cpu", "wrk_cpu", "agent_cpu", "agent_pct", "agent_start", "hwm", "spans",
        "bytes_span", "kernel_lost", "machine_pct", "other_pct", "bpf_pct", "bpf_ns", "foreign",
        "agent_cs", "sink_spans", "sink_cpu"]
rows = [dict(zip(cols, l.rstrip("\n").split("\t"))) for l in open(results) if l.strip()]
final = {}
try:
    for l in open(finals):
        t, s = l.rstrip("\n").split("\t", 1)
        final[t] = s
except FileNotFoundError:
    pass

def sec(x):
    return x + "s" if x not in ("-", "") else "-"

print()
print(f"hoptrace wrk overhead: wrk -t{threads} -c{conns} -d{duration}s --latency; {ncpu} cpus; "
      f"kernel {kernel}; {nginx_v}; wrk {wrk_v}")
print(f"agent: {agent} ({agent_id}; tree {git_id})")
out = {"jsonl": "--output jsonl --output-file <tmp>", "none": "--output none",
       "otlp": f"--output otlp (OTEL_EXPORTER_OTLP_PROTOCOL={otlp_protocol}, to ht_otlp_sink)"
       }[agent_output]
print(f"  run --pid ... {out} {agent_args}".rstrip() + f"; nginx selection: {select}")
if bpf_stats == "1":
    print("BPF run-time stats ON (kernel.bpf_stats via BPF_ENABLE_STATS): adds a little cost to B")
print()
hdr = (f"{'target':<7} {'rnd':>3} {'ph':<3} {'req/s':>9} {'requests':>9} {'p50 ms':>7} "
       f"{'p90 ms':>7} {'p99 ms':>7} {'err':>4} {'srv cpu':>8} {'wrk cpu':>8} {'agent cpu':>9} "
       f"{'agent%':>7} {'RSS MiB':>7} {'spans':>9} {'mach%':>5} {'other%':>6} {'foreign':>7}")
print(hdr)
print("-" * len(hdr))
for r in rows:
    err = int(r["errors"] or 0) + int(r["non2xx"] or 0)
    print(f"{r['target']:<7} {r['round']:>3} {r['phase']:<3} {float(r['rps']):>9.0f} {r['reqs']:>9} "
          f"{float(r['p50']):>7.3f} {float(r['p90']):>7.3f} {float(r['p99']):>7.3f} {err:>4} "
          f"{sec(r['srv_cpu']):>8} {sec(r['wrk_cpu']):>8} {sec(r['agent_cpu']):>9} "
          f"{(r['agent_pct'] + '%') if r['agent_pct'] != '-' else '-':>7} {r['hwm']:>7} "
          f"{r['spans']:>9} {r['machine_pct']:>5} {r['other_pct']:>6} {r['foreign']:>7}")
print()
print("B against the mean of its two baselines (req/s < 1, latency > 1: overhead; drift = A2/A1 req/s)")
hdr2 = (f"{'target':<7} {'rnd':>3} {'req/s':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'drift':>7} "
        f"{'spans/req':>10} {'dropped':>8} {'B/span':>7} {'start':>6} {'kernel_lost':>11} "
        f"{'agent cs/s':>10} {'agent us/req':>12}"
        + (f" {'bpf %core':>9} {'ns/prog run':>11} {'bpf us/req':>10}" if bpf_stats == "1" else ""))
print(hdr2)
print("-" * len(hdr2))
summary = {}
for key in dict.fromkeys((r["target"], r["round"]) for r in rows):
    ph = {r["phase"]: r for r in rows if (r["target"], r["round"]) == key}
    if not all(k in ph for k in ("A1", "B", "A2")):
        continue
    a1, b, a2 = ph["A1"], ph["B"], ph["A2"]
    ratios = {}
    for k in ("rps", "p50", "p90", "p99"):
        base = (float(a1[k]) + float(a2[k])) / 2
        ratios[k] = float(b[k]) / base if base else float("nan")
    summary.setdefault(key[0], []).append(ratios)
    drift = float(a2["rps"]) / float(a1["rps"])
    fs = dict(kv.split("=", 1) for kv in final.get(f"{key[0]} r{key[1]}", "").split() if "=" in kv)
    # Spans written; with --agent-output none, spans built (final stats).
    nsp = b["spans"] if b["spans"] not in ("-", "") else fs.get("spans", "")
    spr = f"{int(nsp) / int(b['reqs']):.4f}" if nsp.isdigit() and int(b["reqs"]) else "-"
    dropped = fs.get("spans_dropped", "?")
    line = (f"{key[0]:<7} {key[1]:>3} {ratios['rps']:>7.3f} {ratios['p50']:>7.3f} "
            f"{ratios['p90']:>7.3f} {ratios['p99']:>7.3f} {drift:>7.3f} {spr:>10} {dropped:>8} "
            f"{b['bytes_span']:>7} {sec(b['agent_start']):>6} {b['kernel_lost']:>11} "
            f"{b['agent_cs']:>10} {1e6 * float(b['agent_cpu']) / max(int(b['reqs']), 1):>12.1f}")
    if bpf_stats == "1":
        bpf_us = float(b["bpf_pct"]) / 100 * float(duration) * 1e6 / max(int(b["reqs"]), 1)
        line += f" {(b['bpf_pct'] + '%'):>9} {b['bpf_ns']:>11} {bpf_us:>10.2f}"
    print(line)
if any(len(v) > 1 for v in summary.values()):
    print()
    print("median over rounds")
    for t, rs in summary.items():
        m = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"{t:<7} {'all':>3} {m['rps']:>7.3f} {m['p50']:>7.3f} {m['p90']:>7.3f} {m['p99']:>7.3f}")
print()
print("CPU per request (us, user+sys over the wrk run / wrk's requests); A = mean of A1 and A2")
hdr4 = (f"{'target':<7} {'rnd':>3} {'ph':<4} {'server':>7} {'wrk':>7} {'agent':>7} {'sink':>7} "
        f"{'rest':>7} {'machine':>8} {'A/B':>6}")
print(hdr4)
print("-" * len(hdr4))

def per_req(r):
    n = max(int(r["reqs"]), 1)
    f = lambda x: float(x) if x not in ("-", "") else 0.0
    wall = float(duration)
    machine = f(r["machine_pct"]) / 100 * int(ncpu) * wall
    other = f(r["other_pct"]) / 100 * wall  # everything but server, wrk, agent: sink included
    sink = f(r["sink_cpu"])
    return {"server": f(r["srv_cpu"]) * 1e6 / n, "wrk": f(r["wrk_cpu"]) * 1e6 / n,
            "agent": f(r["agent_cpu"]) * 1e6 / n, "sink": sink * 1e6 / n,
            "rest": max(other - sink, 0.0) * 1e6 / n, "machine": machine * 1e6 / n}

for key in dict.fromkeys((r["target"], r["round"]) for r in rows):
    ph = {r["phase"]: r for r in rows if (r["target"], r["round"]) == key}
    if not all(k in ph for k in ("A1", "B", "A2")):
        continue
    pa1, pa2, pb = per_req(ph["A1"]), per_req(ph["A2"]), per_req(ph["B"])
    pa = {k: (pa1[k] + pa2[k]) / 2 for k in pa1}
    for label, v in (("A", pa), ("B", pb), ("B-A", {k: pb[k] - pa[k] for k in pb})):
        est = f"{pa['machine'] / pb['machine']:>6.3f}" if label == "B" and pb["machine"] else ""
        print(f"{key[0]:<7} {key[1]:>3} {label:<4} {v['server']:>7.1f} {v['wrk']:>7.1f} "
              f"{v['agent']:>7.1f} {v['sink']:>7.1f} {v['rest']:>7.1f} {v['machine']:>8.1f} {est:>6}")
print("machine: busy time of all cpus over the run / requests. rest: machine less server, wrk,")
print("  agent and sink (softirq, kernel threads, other tenants). A/B: machine CPU per request")
print("  untraced over traced, the throughput ratio to expect where the cpus are the limit at an")
print("  equal busy share: what a request costs the whole box, not only the traced server.")
if agent_output == "otlp":
    print()
    print(f"OTLP export to ht_otlp_sink ({otlp_protocol}), per B run: where the spans went")
    hdr3 = (f"{'target':<7} {'rnd':>3} {'requests':>9} {'spans built':>11} {'exported':>9} "
            f"{'sink got':>9} {'dropped':>8} {'not at sink':>11} {'sink/req':>8} {'sink cpu':>8}")
    print(hdr3)
    print("-" * len(hdr3))
    for r in rows:
        if r["phase"] != "B":
            continue
        fs = dict(kv.split("=", 1)
                  for kv in final.get(f"{r['target']} r{r['round']}", "").split() if "=" in kv)
        built, exported = fs.get("spans", "?"), fs.get("spans_exported", "?")
        got = r["sink_spans"]
        missing = str(int(built) - int(got)) if built.isdigit() and got.isdigit() else "?"
        per_req = f"{int(got) / int(r['reqs']):.4f}" if got.isdigit() and int(r["reqs"]) else "-"
        print(f"{r['target']:<7} {r['round']:>3} {r['reqs']:>9} {built:>11} {exported:>9} "
              f"{got:>9} {fs.get('spans_dropped', '?'):>8} {missing:>11} {per_req:>8} "
              f"{sec(r['sink_cpu']):>8}")
    print("requests: wrk's count (the <= -c requests in flight at its stop are not in it).")
    print("spans built / exported / dropped: the agent's final stats line (dropped = pipeline")
    print("  queue full or left at shutdown). sink got: spans ht_otlp_sink parsed during B.")
    print("not at sink: built - sink got (dropped + lost in failed exports). sink cpu: the sink's")
    print("  user+sys seconds during B.")
print()
print("agent final stats (B):")
for t, s in final.items():
    print(f"  {t}: {s}")
print()
print("srv/wrk/agent cpu: user+sys seconds; server = nginx master + workers (or the python pid),")
print("  measured over the wrk run; agent = from wrk start until the agent went idle after it.")
print("agent%: agent cpu / duration (100% = one core). RSS: agent VmHWM. spans: JSON lines written")
print("  (with otlp: spans the sink received; B/span then = OTLP protobuf bytes per span).")
print("spans/req: spans written (built, with --agent-output none) / wrk's requests; wrk does not")
print("  count the <= -c requests in flight at its stop. dropped: spans_dropped (pipeline queue")
print("  full: never exported). start: agent launch to 'hoptrace ready'. agent cs/s: context")
print("  switches of all agent threads per second. agent us/req: agent cpu / requests.")
print("mach%: busy share of all cpus. other%: cpu (in % of one core) used by none of wrk, server,")
print("  agent: loopback softirq, kernel threads, other tenants. foreign: ht_ BPF programs of other")
print("  hoptrace agents (their syscall tracepoints also run on wrk's and the server's syscalls).")
EOF
# Our agent must have left nothing in the kernel.
# shellcheck disable=SC2086
leftover=$(ht_prog_ids | grep -xF -f <(printf '%s\n' $OUR_PROG_IDS 0) | tr '\n' ' ' || true)
[ -z "$leftover" ] || log "WARNING: BPF programs of our agent still loaded: ids $leftover"
exit 0
