"""What the Go crypto/tls probes cost per HTTPS request, A/B in one run.

    sudo GO_TLSFRONT_BIN=build/tests/go/tlsfront \
        python3 -m pytest -s -p no:cacheprovider tests/bench/gotls_cost.py

wrk (namespace c, OpenSSL, not selected) -> tests/go/tlsfront (namespace a,
net/http TLS server, GET /leaf/1, keep-alive) selected by pid. Rounds
alternate the order of
  off   hoptrace --pid SERVER --no-tls  (the Go probes not attached: the
        agent follows the server's sockets and ignores their ciphertext)
  on    hoptrace --pid SERVER           (Go probes attached: plaintext spans)
  none  no agent at all
on the same server process. Per request it reports the server's CPU (the
uprobe handlers and BPF programs run in its threads: summed
/proc/PID/task/*/schedstat), the agent's CPU, and on/off per round (ratio
and extra ns), with median and spread (min..max) over rounds.
HOPTRACE_BENCH_SECONDS (default 6) and HOPTRACE_BENCH_ROUNDS (default 5).
HOPTRACE_BENCH_BPF_STATS=1 also turns on the kernel's BPF run-time
accounting (BPF_ENABLE_STATS, held by this process only while it runs; it
costs every BPF program of the machine two clock reads per run, so leave it
off for the headline numbers) and prints, for "on", the runs and ns per
request of the Go TLS programs and of all the agent's programs: what is left
of the server's extra CPU is the uprobe traps themselves.
Asserted: every request succeeds; "on" makes spans and "off" none.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from conftest import Agent, topo  # noqa: E402,F401 - fixtures
from test_tls import make_cert  # noqa: E402

SECONDS = int(os.environ.get("HOPTRACE_BENCH_SECONDS", "6"))
ROUNDS = int(os.environ.get("HOPTRACE_BENCH_ROUNDS", "5"))
CONNECTIONS = 4


def cpu_ns(pid):
    """CPU time of every thread of pid so far (ns)."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((t / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass
    return total


def enable_bpf_stats():
    """Holds a BPF_ENABLE_STATS fd (accounting ends when this process does)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(16)  # enable_stats.type = BPF_STATS_RUN_TIME (0)
    fd = libc.syscall(321, 32, attr, 16)     # __NR_bpf (x86_64), BPF_ENABLE_STATS
    assert fd >= 0, os.strerror(ctypes.get_errno())
    return fd


def prog_stats(pid):
    """{program name: (run_cnt, run_time_ns)} of the programs process pid holds."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            m = re.search(r"^prog_id:\s*(\d+)", info.read_text(), re.M)
        except OSError:
            continue
        if m:
            ids.add(int(m.group(1)))
    out = {}
    for i in ids:
        r = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(i)], capture_output=True,
                           text=True)
        if r.returncode == 0:
            p = json.loads(r.stdout)
            c, t = out.get(p.get("name", "?"), (0, 0))
            out[p.get("name", "?")] = (c + p.get("run_cnt", 0), t + p.get("run_time_ns", 0))
    return out


def wrk(ns, url):
    r = subprocess.run(["ip", "netns", "exec", ns, "wrk", "-t1", f"-c{CONNECTIONS}",
                        f"-d{SECONDS}s", url], capture_output=True, text=True, timeout=SECONDS + 60)
    m = re.search(r"(\d+) requests in", r.stdout)
    assert m and "Non-2xx" not in r.stdout and "Socket errors" not in r.stdout, r.stdout
    return int(m.group(1))


def test_gotls_probe_cost(topo, tmp_path):
    c, a = topo.ns("c"), topo.ns("a")
    topo.link(c, "10.218.1.1", a, "10.218.1.2")
    d = Path(f"/tmp/ht{topo.tag}")
    d.mkdir(exist_ok=True)
    cert, key = make_cert(d, ["10.218.1.2"])
    srv = topo.start(a, [os.environ.get("GO_TLSFRONT_BIN", "build/tests/go/tlsfront"),
                         "-listen", "10.218.1.2:9443", "-cert", str(cert), "-key", str(key)])
    assert srv.stdout.readline().strip() == b"listening"
    url = "https://10.218.1.2:9443/leaf/1"
    stats = os.environ.get("HOPTRACE_BENCH_BPF_STATS") == "1"
    if stats:
        enable_bpf_stats()
    wrk(c, url)  # warm-up: the server's heap and TLS session caches
    results = {"none": [], "off": [], "on": []}
    for r in range(ROUNDS):
        order = ["none", "off", "on"] if r % 2 == 0 else ["on", "off", "none"]
        for mode in order:
            agent = None
            if mode != "none":
                args = ["--pid", str(srv.pid)] + (["--no-tls"] if mode == "off" else [])
                agent = Agent(tmp_path, args, name=f"{mode}{r}").start()
                if mode == "on":
                    deadline = time.time() + 10
                    while "Go crypto/tls" not in agent.log_text() and time.time() < deadline:
                        time.sleep(0.05)
                    assert "Go crypto/tls" in agent.log_text(), agent.log_text()
            p0 = prog_stats(agent.proc.pid) if stats and agent else {}
            s0, a0 = cpu_ns(srv.pid), cpu_ns(agent.proc.pid) if agent else 0
            n = wrk(c, url)
            s1, a1 = cpu_ns(srv.pid), cpu_ns(agent.proc.pid) if agent else 0
            if stats and agent:
                p1 = prog_stats(agent.proc.pid)
                d = {k: (v[0] - p0.get(k, (0, 0))[0], v[1] - p0.get(k, (0, 0))[1])
                     for k, v in p1.items()}
                go = [v for k, v in d.items() if k.startswith("ht_gotls")]
                print(f"  bpf {mode}: gotls {sum(c for c, _ in go) / n:.2f} runs/req "
                      f"{sum(t for _, t in go) / n:.0f} ns/req; all programs "
                      f"{sum(c for c, _ in d.values()) / n:.2f} runs/req "
                      f"{sum(t for _, t in d.values()) / n:.0f} ns/req; "
                      + ", ".join(f"{k} {c / n:.2f}x{t / max(c, 1):.0f}ns"
                                  for k, (c, t) in sorted(d.items()) if c), flush=True)
            if agent:
                time.sleep(0.5)
                spans = len(agent.spans())
                agent.stop()
                if mode == "on":
                    assert spans > n // 2, (spans, n)
                else:
                    assert spans == 0, spans
            results[mode].append({"n": n, "srv_ns": (s1 - s0) / n, "agent_ns": (a1 - a0) / n,
                                  "rps": n / SECONDS})
            print(f"round {r} {mode:4}: {n} req, {n / SECONDS:.0f}/s, server "
                  f"{(s1 - s0) / n:.0f} ns/req, agent {(a1 - a0) / n:.0f} ns/req", flush=True)

    def summary(vals):
        return (f"median {statistics.median(vals):.0f} (min {min(vals):.0f} .. "
                f"max {max(vals):.0f})")

    print()
    for mode, rs in results.items():
        print(f"{mode:4}: server ns/req {summary([x['srv_ns'] for x in rs])}; agent ns/req "
              f"{summary([x['agent_ns'] for x in rs])}; req/s {summary([x['rps'] for x in rs])}")
    on, off, none = results["on"], results["off"], results["none"]
    extra = [o["srv_ns"] - f["srv_ns"] for o, f in zip(on, off)]
    ratio = [o["srv_ns"] / f["srv_ns"] for o, f in zip(on, off)]
    extra_all = [(o["srv_ns"] + o["agent_ns"]) - (f["srv_ns"] + f["agent_ns"])
                 for o, f in zip(on, off)]
    print(f"on-off server extra ns/req per round: {[round(x) for x in extra]} -> {summary(extra)}")
    print(f"on/off server ratio per round: {[round(x, 3) for x in ratio]} -> median "
          f"{statistics.median(ratio):.3f} (min {min(ratio):.3f} .. max {max(ratio):.3f})")
    print(f"on-off server+agent extra ns/req: {summary(extra_all)}")
    ratio_none = [o["srv_ns"] / z["srv_ns"] for o, z in zip(on, none)]
    print(f"on/none server ratio: median {statistics.median(ratio_none):.3f} "
          f"(min {min(ratio_none):.3f} .. max {max(ratio_none):.3f})")
