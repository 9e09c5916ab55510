#!/usr/bin/env bash
# What the agent costs per request, old binary against new, on a busy box.
#
#   sudo tests/bench/agent_cost.sh --old OLD_HOPTRACE [--new NEW_HOPTRACE]
#        [--requests 60000] [--rounds 3] [--connections 8] [--output none|jsonl|otlp]
#        [--profile FILE] [--profile-server PREFIX] [--propagation]
#
# A private nginx (1 worker, 100-byte file, keep-alive, sendfile off) on
# 127.0.0.1 takes a FIXED number of requests from wrk (-t1, a Lua script
# stops it after --requests) in each phase; the phases alternate, in a
# rotating order, over --rounds:
#   none  no agent (nginx's own cost)
#   old   the --old agent selecting nginx's master and worker (--pid)
#   new   the --new agent (default build/agent/hoptrace), same selection
# Per phase, divided by the requests wrk counted:
#   agent µs/req     the agent's CPU (perf stat task-clock over every thread,
#                    from before wrk starts until the agent is idle again:
#                    everything it did for these requests)
#   agent ins/req    instructions:u + instructions:k of the agent, when the
#                    machine has hardware counters (this PVM guest has none:
#                    "n/a"; tests/bench/agent_instructions.sh counts them
#                    without a kernel, under callgrind)
#   cs/1k req        the agent's context switches (every thread) per 1000
#                    requests: each is a wake-up the agent paid for
#   bpf ns/req       run_time_ns summed over the agent's BPF programs
#                    (BPF_ENABLE_STATS held by a helper for the whole run,
#                    so the "none" phases pay its clock reads too), and
#   bpf runs/req     run_cnt summed over them
#   bpf-acct ns/req  bpf ns/req less runs/req x F, F what a trivial program
#                    (a helper call and a compare) reports per run under the
#                    same accounting, measured here first by
#                    build/tests/bench/ht_syscall_hook_bench --stats (skipped
#                    when that is not built): run_time_ns includes the
#                    accounting's own clock read, ~30 ns a run on this PVM
#                    guest, so this is nearer what the programs cost
#   nginx µs/req     the worker's CPU: its difference to "none" is what the
#                    kernel side (tracepoints + BPF) costs the traced process
#   RSS MiB          the agent's peak RSS (VmHWM)
# --profile-server PREFIX: perf record (cpu-clock, user and kernel) of
# nginx's worker in the last round's "none" and "new" phases, written to
# PREFIX.none.data and PREFIX.new.data, and a table of the functions whose
# time per request grew most from one to the other: where a traced request
# costs the traced process more (the BPF programs and their helpers, the
# tracepoints' own work, and what changes around them: wake-ups of the
# client, IPIs, caches).
# --propagation: nginx runs in a cgroup of its own (made here, removed at
# the end) and both agents inject there (--propagation-cgroup): kernel-side
# contexts, and the read guard where the kernel needs it.
# --profile FILE: perf record (cpu-clock, call graphs, user and kernel) of the
# new agent in the last round, written to FILE: `perf report -i FILE
# --no-children` says where its CPU goes (the figures of that phase include
# perf's own cost).
# CPU time depends less on load than requests/s but still does (caches,
# the other core's work); run several rounds and read the spread. For each
# binary the summary gives the median and [min, max] over rounds, and the
# per-program BPF table of its last round.
#
# Python: Debian's /usr/bin/python3 (stdlib only). No pass/fail: exits 0
# when the measurements were taken.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OLD=""
NEW="$ROOT/build/agent/hoptrace"
REQUESTS=60000
ROUNDS=3
CONNECTIONS=8
OUTPUT=none
SINK="${HT_OTLP_SINK:-$ROOT/build/tests/bench/ht_otlp_sink}"
KEEP=0
PROFILE=""
PROFILE_SERVER=""
SERVER_PROFILE_HZ=4000
PROPAGATION=0
PY=/usr/bin/python3

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
  case "$1" in
    --old) OLD="$2"; shift 2 ;;
    --new) NEW="$2"; shift 2 ;;
    --requests) REQUESTS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --output) OUTPUT="$2"; shift 2 ;;
    --sink) SINK="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --profile) PROFILE="$2"; shift 2 ;;
    --profile-server) PROFILE_SERVER="$2"; shift 2 ;;
    --propagation) PROPAGATION=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "agent_cost: $*" >&2; exit 1; }
log() { echo "[agent_cost] $*" >&2; }
[ "$(id -u)" -eq 0 ] || die "needs root (BPF): run with sudo"
[ -n "$OLD" ] || die "--old HOPTRACE is required (e.g. a build of main in another build dir)"
[ -x "$OLD" ] || die "$OLD is not executable"
[ -x "$NEW" ] || die "$NEW is not executable"
for v in REQUESTS ROUNDS CONNECTIONS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--${v,,} needs a positive whole number"
done
case "$OUTPUT" in none|jsonl|otlp) ;; *) die "--output: none, jsonl or otlp" ;; esac
[ "$OUTPUT" != otlp ] || [ -x "$SINK" ] || die "$SINK missing: cmake --build build --target ht_otlp_sink"
for c in wrk nginx perf bpftool curl; do command -v "$c" >/dev/null || die "$c not found"; done

TMP=$(mktemp -d /tmp/hoptrace-cost.XXXXXX)
HZ=$(getconf CLK_TCK)
# Private copies: build/ may be rebuilt while this runs.
cp "$OLD" "$TMP/hoptrace-old"
cp "$NEW" "$TMP/hoptrace-new"
NGINX_PID="" WRK_PID="" AGENT_PID="" STATS_PID="" PERF_PID="" SINK_PID="" RECORD_PID=""
CGROUP=""

stop_pid() {  # pid signal seconds
  local pid="$1" sig="$2" secs="${3:-10}" i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317  # runs from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$WRK_PID" INT 5
  stop_pid "$PERF_PID" INT 5
  stop_pid "$RECORD_PID" INT 10
  stop_pid "$AGENT_PID" INT 20
  stop_pid "$NGINX_PID" QUIT 10
  stop_pid "$STATS_PID" TERM 5
  stop_pid "$SINK_PID" TERM 10
  if [ -n "$CGROUP" ]; then  # empty once nginx's worker is gone too
    for ((i = 0; i < 50; i++)); do rmdir "$CGROUP" 2>/dev/null && break; sleep 0.1; done
    [ ! -d "$CGROUP" ] || log "could not remove $CGROUP: $(cat "$CGROUP/cgroup.procs")"
  fi
  if [ "$KEEP" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# shellcheck source=tests/bench/otlp_sink.sh
. "$ROOT/tests/bench/otlp_sink.sh"

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
children_of() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }
prog_ids_of() {
  grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{ print $2 }' | sort -un | tr '\n' ' '
}
# One "name run_cnt run_time_ns" line per program id given.
bpf_progs() {
  bpftool prog show -j 2>/dev/null | "$PY" -c '
import json, sys
ids = {int(x) for x in sys.argv[1:]}
for p in json.load(sys.stdin):
    if p["id"] in ids:
        print(p.get("name", "?"), p.get("run_cnt", 0), p.get("run_time_ns", 0))' "$@"
}

# ---- BPF run-time accounting, held for the whole run -------------------------
"$PY" -c '
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
# What a trivial program reports per run under this accounting (the floor of
# every ns/run below; see the header).
HOOK_BENCH="${HT_SYSCALL_HOOK_BENCH:-$ROOT/build/tests/bench/ht_syscall_hook_bench}"
ACCT_FLOOR=""
if [ -x "$HOOK_BENCH" ]; then
  ACCT_FLOOR=$("$HOOK_BENCH" --stats --rounds 1 --calls 300000 2>/dev/null |
    awk '$1 == "tp" { print $NF }' | tail -1) || ACCT_FLOOR=""
fi

# ---- nginx ---------------------------------------------------------------------
mkdir -p "$TMP/nginx/www" "$TMP/nginx/tmp"
chmod 755 "$TMP" "$TMP/nginx" "$TMP/nginx/www"
"$PY" -c 'import sys; open(sys.argv[1], "w").write("x" * 99 + "\n")' "$TMP/nginx/www/small.txt"
PORT=$(free_port)
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
lock_file $TMP/nginx/nginx.lock;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path $TMP/nginx/tmp/body;
  proxy_temp_path $TMP/nginx/tmp/proxy;
  fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
  uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
  scgi_temp_path $TMP/nginx/tmp/scgi;
  default_type text/plain;
  server { listen 127.0.0.1:$PORT; root $TMP/nginx/www; location / { } }
}
EOF
if [ "$PROPAGATION" = 1 ]; then
  # The host's cgroup v2 hierarchy, wherever it is mounted.
  CG_ROOT=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' \
    /proc/self/mountinfo | head -n 1)
  [ -n "$CG_ROOT" ] && [ -e "$CG_ROOT/cgroup.procs" ] || die "--propagation: no cgroup v2 hierarchy mounted"
  CGROUP="$CG_ROOT/hoptrace-test-cost-$$"
  mkdir "$CGROUP"
  # nginx (and its worker) start inside it: a subshell moves itself, then execs.
  sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CGROUP" \
    nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >/dev/null 2>&1 &
else
  nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" >/dev/null 2>&1 &
fi
NGINX_PID=$!
URL="http://127.0.0.1:$PORT/small.txt"
for ((i = 0; i < 100; i++)); do
  [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$URL" || true)" = 200 ] && break
  sleep 0.1
done
WORKER=$(children_of "$NGINX_PID" | awk '{ print $1 }')
[ -n "$WORKER" ] || die "nginx did not start: $(cat "$TMP/nginx/error.log")"
log "nginx $NGINX_PID (worker $WORKER) on $URL"
[ "$OUTPUT" = otlp ] && start_otlp_sink

# After REQUESTS responses wrk's thread stops and leaves a mark; SIGINT then
# ends wrk (it prints its counts), instead of waiting for -d to pass.
cat >"$TMP/stop.lua" <<EOF
local n = 0
response = function(status, headers, body)
  n = n + 1
  if n == $REQUESTS then
    local f = io.open("$TMP/wrk.done", "w"); f:write("done"); f:close()
    wrk.thread:stop()
  end
end
EOF
# Instructions where the machine counts them.
PERF_EVENTS=task-clock,context-switches
if perf stat -e instructions:u -x, true 2>&1 | grep -q '^[0-9]'; then
  PERF_EVENTS=task-clock,context-switches,instructions:u,instructions:k
fi
log "perf stat events: $PERF_EVENTS"

start_agent() {  # binary log
  local out=(--output "$OUTPUT") env_otlp=()
  [ -n "$CGROUP" ] && out+=(--propagation-cgroup "$CGROUP")
  [ "$OUTPUT" = jsonl ] && out+=(--output-file /dev/null)
  [ "$OUTPUT" = otlp ] && env_otlp=("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_GRPC_PORT"
                                     OTEL_EXPORTER_OTLP_PROTOCOL=grpc)
  env -i PATH="$PATH" "${env_otlp[@]}" "$1" run --pid "$NGINX_PID" --pid "$WORKER" "${out[@]}" \
    >/dev/null 2>"$2" &
  AGENT_PID=$!
  for ((i = 0; i < 300; i++)); do
    grep -q "hoptrace ready" "$2" 2>/dev/null && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || die "agent exited: $(tail -n 20 "$2")"
    sleep 0.1
  done
  die "agent not ready in 30 s: $(tail -n 20 "$2")"
}
wait_agent_idle() {
  local prev cur i
  prev=$(cpu_ticks "$AGENT_PID")
  for ((i = 0; i < 40; i++)); do
    sleep 0.5
    cur=$(cpu_ticks "$AGENT_PID")
    [ "$cur" = "$prev" ] && return 0
    prev=$cur
  done
}

RESULTS="$TMP/results.tsv"
: >"$RESULTS"
phase() {  # round which(none|old|new)
  local r="$1" which="$2" tag="$1-$2" alog="$TMP/agent-$1-$2.log" ids="" n0 n1
  local perf_out="$TMP/perf-$tag.csv" hwm="-" final="-"
  if [ "$which" != none ]; then
    start_agent "$TMP/hoptrace-$which" "$alog"
    ids=$(prog_ids_of "$AGENT_PID")
    # shellcheck disable=SC2086
    bpf_progs $ids >"$TMP/bpf0-$tag.txt"
    perf stat -e "$PERF_EVENTS" -x, -o "$perf_out" -p "$AGENT_PID" &
    PERF_PID=$!
    if [ -n "$PROFILE" ] && [ "$which" = new ] && [ "$r" = "$ROUNDS" ]; then
      perf record -q -e cpu-clock -F 4000 -g -p "$AGENT_PID" -o "$PROFILE" >/dev/null 2>&1 &
      RECORD_PID=$!
    fi
    sleep 0.3
  fi
  n0=$(cpu_ticks "$WORKER")
  local server_record=""
  if [ -n "$PROFILE_SERVER" ] && [ "$which" != old ] && [ "$r" = "$ROUNDS" ]; then
    perf record -q -e cpu-clock -F "$SERVER_PROFILE_HZ" -g -p "$WORKER" \
      -o "$PROFILE_SERVER.$which.data" >/dev/null 2>&1 &
    server_record=$!
    sleep 0.2
  fi
  log "round $r $which: wrk -t1 -c$CONNECTIONS, $REQUESTS requests"
  rm -f "$TMP/wrk.done"
  wrk -t1 -c"$CONNECTIONS" -d600s -s "$TMP/stop.lua" "$URL" >"$TMP/wrk-$tag.txt" 2>&1 &
  WRK_PID=$!
  while [ ! -e "$TMP/wrk.done" ] && kill -0 "$WRK_PID" 2>/dev/null; do sleep 0.05; done
  stop_pid "$WRK_PID" INT 10
  WRK_PID=""
  n1=$(cpu_ticks "$WORKER")
  if [ -n "$server_record" ]; then
    stop_pid "$server_record" INT 10
    awk '/requests in/ { print $1 }' "$TMP/wrk-$tag.txt" >"$PROFILE_SERVER.$which.requests"
  fi
  if [ "$which" != none ]; then
    wait_agent_idle
    stop_pid "$PERF_PID" INT 5
    PERF_PID=""
    stop_pid "$RECORD_PID" INT 10
    RECORD_PID=""
    # shellcheck disable=SC2086
    bpf_progs $ids >"$TMP/bpf1-$tag.txt"
    hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$AGENT_PID/status")
    stop_pid "$AGENT_PID" INT 30
    AGENT_PID=""
    final=$(grep -o 'stats (final): .*' "$alog" | tail -1 | sed 's/^stats (final): //')
  fi
  local reqs
  reqs=$(awk '/requests in/ { print $1 }' "$TMP/wrk-$tag.txt")
  [ -n "$reqs" ] || die "wrk output: $(cat "$TMP/wrk-$tag.txt")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$which" "$reqs" "$((n1 - n0))" "$hwm" "$final" >>"$RESULTS"
}

ORDERS=("none old new" "new old none" "old new none" "none new old" "new none old" "old none new")
for ((r = 1; r <= ROUNDS; r++)); do
  for w in ${ORDERS[$(((r - 1) % ${#ORDERS[@]}))]}; do phase "$r" "$w"; done
done

# ---- report --------------------------------------------------------------------
echo "agent_cost: $REQUESTS requests per phase, wrk -t1 -c$CONNECTIONS, nginx 1 worker, 100 B;" \
  "--output $OUTPUT$([ -n "$CGROUP" ] && echo ", propagation in $CGROUP"); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "old: $OLD ($(sha256sum "$TMP/hoptrace-old" | cut -c1-12))"
echo "new: $NEW ($(sha256sum "$TMP/hoptrace-new" | cut -c1-12))"
[ -n "$ACCT_FLOOR" ] && echo "accounting floor: a trivial program reports $ACCT_FLOOR ns per run ($HOOK_BENCH --stats)"
"$PY" - "$TMP" "$HZ" "${ACCT_FLOOR:-}" <<'EOF'
import os, statistics, sys
tmp, hz = sys.argv[1], int(sys.argv[2])
acct_floor = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None

def perf_stat(path):
    out = {}
    try:
        for line in open(path):
            f = line.strip().split(",")
            if len(f) > 2 and f[0] and f[0][0].isdigit():
                out[f[2]] = float(f[0])
    except OSError:
        pass
    return out

def progs(path):
    d = {}
    for line in open(path):
        name, cnt, ns = line.split()
        c, n = d.get(name, (0, 0))
        d[name] = (c + int(cnt), n + int(ns))
    return d

rows = {}
last_detail = {}
for line in open(os.path.join(tmp, "results.tsv")):
    r, which, reqs, nticks, hwm, final = line.rstrip("\n").split("\t")
    reqs = int(reqs)
    row = {"nginx": int(nticks) / hz * 1e6 / reqs}
    if which != "none":
        ps = perf_stat(os.path.join(tmp, f"perf-{r}-{which}.csv"))
        row["agent"] = ps.get("task-clock", 0) * 1e3 / reqs  # msec -> us
        ins = [ps[k] for k in ("instructions:u", "instructions:k") if k in ps]
        row["ins"] = sum(ins) / reqs if ins else None
        row["cs"] = ps["context-switches"] * 1000 / reqs if "context-switches" in ps else None
        p0 = progs(os.path.join(tmp, f"bpf0-{r}-{which}.txt"))
        p1 = progs(os.path.join(tmp, f"bpf1-{r}-{which}.txt"))
        detail = {k: (p1[k][0] - p0.get(k, (0, 0))[0], p1[k][1] - p0.get(k, (0, 0))[1]) for k in p1}
        row["bpf_ns"] = sum(v[1] for v in detail.values()) / reqs
        row["bpf_runs"] = sum(v[0] for v in detail.values()) / reqs
        if acct_floor is not None:
            row["bpf_acct"] = row["bpf_ns"] - row["bpf_runs"] * acct_floor
        row["rss"] = float(hwm)
        row["final"] = final
        last_detail[which] = (detail, reqs)
    rows.setdefault(which, []).append((int(r), reqs, row))

print()
print(f"{'round':>5} {'phase':>5} {'requests':>9} {'agent us/req':>12} {'agent ins/req':>13} "
      f"{'cs/1k req':>9} {'bpf ns/req':>10} {'bpf runs/req':>12} {'nginx us/req':>12} "
      f"{'RSS MiB':>8}")
allrows = sorted((r, w, reqs, row) for w, v in rows.items() for r, reqs, row in v)
for r, w, reqs, row in allrows:
    f = lambda k, fmt: (fmt % row[k]) if row.get(k) is not None else "-"
    print(f"{r:>5} {w:>5} {reqs:>9} {f('agent', '%.2f'):>12} {f('ins', '%.0f'):>13} "
          f"{f('cs', '%.1f'):>9} {f('bpf_ns', '%.0f'):>10} {f('bpf_runs', '%.2f'):>12} {f('nginx', '%.2f'):>12} "
          f"{f('rss', '%.1f'):>8}")

print("\nmedian [min, max] over rounds")
for key, label, fmt in (("agent", "agent us/req", "%.2f"), ("ins", "agent ins/req", "%.0f"),
                        ("cs", "agent cs/1k req", "%.1f"),
                        ("bpf_ns", "bpf ns/req", "%.0f"), ("bpf_acct", "bpf-acct ns/req", "%.0f"),
                        ("bpf_runs", "bpf runs/req", "%.2f"),
                        ("nginx", "nginx us/req", "%.2f"), ("rss", "peak RSS MiB", "%.1f")):
    parts = []
    for w in ("none", "old", "new"):
        vals = [row[key] for _, _, row in rows.get(w, []) if row.get(key) is not None]
        if vals:
            parts.append(f"{w} {fmt % statistics.median(vals)} [{fmt % min(vals)}, {fmt % max(vals)}]")
    if parts:
        print(f"  {label:<14} " + "   ".join(parts))

for w in ("old", "new"):
    if w not in last_detail:
        continue
    detail, reqs = last_detail[w]
    print(f"\nBPF programs of {w} (last round): runs/req, ns/run, ns/req")
    for name, (cnt, ns) in sorted(detail.items(), key=lambda kv: -kv[1][1]):
        if cnt:
            print(f"  {name:<28} {cnt / reqs:>6.2f} {ns / cnt:>7.0f} {ns / reqs:>7.0f}")
for w in ("old", "new"):
    for r, reqs, row in rows.get(w, []):
        print(f"final stats {w} r{r}: {row.get('final', '-')}")
EOF

if [ -n "$PROFILE_SERVER" ] && [ -s "$PROFILE_SERVER.none.data" ] && [ -s "$PROFILE_SERVER.new.data" ]; then
  for w in none new; do
    perf report -i "$PROFILE_SERVER.$w.data" -n --no-children --sort sym -g none -F sample,sym \
      2>/dev/null | grep -v '^#' | grep -v '^$' >"$TMP/server-$w.txt" || true
  done
  "$PY" - "$TMP" "$PROFILE_SERVER" "$SERVER_PROFILE_HZ" <<'EOF2'
import sys
tmp, prefix, hz = sys.argv[1], sys.argv[2], int(sys.argv[3])

def load(which):
    reqs = int(open(f"{prefix}.{which}.requests").read().split()[0])
    d = {}
    for line in open(f"{tmp}/server-{which}.txt"):
        f = line.split(None, 1)
        if len(f) == 2 and f[0].isdigit():
            d[f[1].strip()] = d.get(f[1].strip(), 0) + int(f[0]) / hz * 1e6 / reqs
    return d

none, new = load("none"), load("new")
total = lambda d: sum(d.values())
print(f"\nnginx worker, perf cpu-clock at {hz} Hz, last round: {total(none):.2f} us/req untraced,"
      f" {total(new):.2f} with new ({prefix}.{{none,new}}.data)")
bpf = lambda k: "bpf" in k or "perf_syscall" in k or "trace_call" in k
print(f"  in BPF programs, their helpers and the tracepoints (names with bpf, perf_syscall_*,"
      f" trace_call_bpf): {sum(v for k, v in new.items() if bpf(k)) - sum(v for k, v in none.items() if bpf(k)):+.2f} us/req")
print("  the functions whose time per request grew most (us/req: untraced -> new):")
rows = sorted(((new.get(k, 0) - none.get(k, 0), k) for k in set(none) | set(new)), reverse=True)
for d, k in rows[:15]:
    print(f"    {d:+6.3f}  {none.get(k, 0):6.3f} -> {new.get(k, 0):6.3f}  {k}")
EOF2
fi
