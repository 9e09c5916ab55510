#!/usr/bin/env bash
# What the network probes (bpf/net_probe.bpf.c and the network attributes)
# add per request: tests/bench/wrk_overhead.sh run with and without them,
# interleaved in one session (off, on, off, on, ...) so that drift hits both.
#
#   sudo tests/bench/net_probe_overhead.sh [--rounds 2] [wrk_overhead.sh options ...]
#
# Each wrk_overhead.sh run is A/B/A (no agent / agent / no agent) with
# --bpf-stats; "off" gives the agent --no-net-probes. Reported per run: B's
# req/s and p99 against its own baselines, the agent's CPU per request, the
# time in all of the agent's BPF programs per request, and the network
# probes' own programs (hn_*): runs per request, ns per run, ns per request.
# No pass/fail threshold.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUNDS=2
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --rounds=*) ROUNDS="${1#*=}"; shift ;;
    *) PASS+=("$1"); shift ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "net_probe_overhead: needs root" >&2; exit 1; }
OUT=$(mktemp -d /tmp/hoptrace-netprobe.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

for ((r = 1; r <= ROUNDS; r++)); do
  for v in off on; do
    extra=()
    [ "$v" = off ] && extra=(--agent-arg=--no-net-probes)
    echo "[net_probe_overhead] round $r, network probes $v" >&2
    "$ROOT/tests/bench/wrk_overhead.sh" --bpf-stats --keep "${PASS[@]}" "${extra[@]}" \
      >"$OUT/$v-$r.txt" 2>"$OUT/$v-$r.err" || { cat "$OUT/$v-$r.err" >&2; exit 1; }
    kept=$(grep -o 'kept /tmp/hoptrace-wrk\.[A-Za-z0-9]*' "$OUT/$v-$r.err" | awk '{ print $2 }')
    mkdir -p "$OUT/$v-$r.d"
    cp "$kept"/bpf-*.txt "$kept"/bpf-*.total "$OUT/$v-$r.d/" 2>/dev/null || true
    rm -rf "$kept"
  done
done

python3 - "$OUT" "$ROUNDS" <<'EOF'
import glob, os, re, sys

out, rounds = sys.argv[1], int(sys.argv[2])
print()
print("network probes off/on, interleaved; B against its own A/B/A baselines (wrk_overhead.sh)")
hdr = (f"{'run':<8} {'target':<7} {'req/s B/A':>9} {'p99 B/A':>8} {'agent us/req':>12} "
       f"{'bpf us/req':>10} {'hn runs/req':>11} {'hn ns/run':>9} {'hn ns/req':>9}")
print(hdr)
print("-" * len(hdr))
for r in range(1, rounds + 1):
    for v in ("off", "on"):
        text = open(f"{out}/{v}-{r}.txt").read()
        ratios = {}
        sect = text.split("B against the mean", 1)[-1]
        for line in sect.splitlines()[3:]:
            f = line.split()
            if len(f) < 17 or not f[1].isdigit():
                break
            ratios[f[0]] = f
        for target, f in ratios.items():
            runs = ns = 0
            reqs = None
            for path in glob.glob(f"{out}/{v}-{r}.d/bpf-{target}-r*.txt"):
                for row in open(path):
                    name, cnt, t = row.split()
                    if name.startswith("hn_"):
                        runs += int(cnt); ns += int(t)
            m = re.search(rf"^{target}\s+1\s+B\s+\S+\s+(\d+)", text, re.M)
            reqs = int(m.group(1)) if m else 0
            per_req = lambda x: x / reqs if reqs else float("nan")
            print(f"{v + '-' + str(r):<8} {target:<7} {float(f[2]):>9.3f} {float(f[5]):>8.3f} "
                  f"{float(f[13]):>12.1f} {float(f[16]):>10.2f} {per_req(runs):>11.2f} "
                  f"{(ns / runs if runs else 0):>9.0f} {per_req(ns):>9.0f}")
print()
print("agent us/req: agent CPU / requests; bpf us/req: all of the agent's BPF programs;")
print("hn_*: the network probes' programs (tcp_probe runs for every arriving segment of the")
print("host, a single map lookup for sockets hoptrace does not follow).")
EOF
