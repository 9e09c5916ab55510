"""What traceparent injection costs per request, measured with wrk in one run.

    sudo python3 -m pytest -s -p no:cacheprovider tests/bench/propagation_overhead.py

wrk (namespace c) -> nginx reverse proxy (namespace a, in the benchmark's own
cgroup, selected) -> nginx answering 200 (namespace b). The same nginx pair
is measured, interleaved A/B/A/B/A, with
  base    no agent,
  trace   hoptrace, read-only (--no-propagation),
  inject  hoptrace with propagation (sockops + sk_msg + kernel-side context),
for two upstream styles: a new upstream connection per request (sockops and
a sockhash insert every time) and upstream keep-alive (sk_msg only). It
prints requests/s, latency percentiles, and what inject adds per request
over trace (service time, 1/throughput, and median latency), and writes
them to $HOPTRACE_BENCH_REPORT (JSON) if set.
Nothing is asserted beyond every request succeeding and every proxied request
carrying exactly one traceparent under inject.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from conftest import agent_factory, topo  # noqa: E402,F401 - fixtures
from propagation_util import TestCgroup, start_in  # noqa: E402

DURATION_S = int(os.environ.get("HOPTRACE_BENCH_SECONDS", "8"))
CONNECTIONS = 16

LEAF_CONF = """
daemon off; master_process on; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  log_format tp '$http_traceparent';
  server {{
    listen 10.217.2.2:9000;
    keepalive_requests 1000000;
    location / {{ {log} return 200 "ok\\n"; }}
  }}
}}
"""

PROXY_CONF = """
daemon off; master_process on; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream leaf {{ server 10.217.2.2:9000; {keepalive} }}
  server {{
    listen 10.217.1.2:8000;
    keepalive_requests 1000000;
    location / {{ proxy_pass http://leaf; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""


def nginx(topo, ns, conf_text, name, cg=None):
    d = Path(f"/tmp/ht{topo.tag}/{name}")
    d.mkdir(parents=True, exist_ok=True)
    (d / "nginx.conf").write_text(conf_text)
    argv = ["nginx", "-c", str(d / "nginx.conf"), "-p", str(d)]
    p = start_in(topo, cg, ns, argv) if cg else topo.start(ns, argv)
    time.sleep(0.5)
    kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
    if cg:
        cg.extra_pids += [int(k) for k in kids]
    return p, [p.pid] + [int(k) for k in kids], d


def wrk(topo, ns):
    r = subprocess.run(["ip", "netns", "exec", ns, "wrk", "-t2", f"-c{CONNECTIONS}",
                        f"-d{DURATION_S}s", "--latency", "http://10.217.1.2:8000/"],
                       capture_output=True, text=True, timeout=DURATION_S + 60)
    out = r.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)
    assert not errors and not sock_err, f"{topo.mode}: {out}"

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    return {"rps": rps, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99)}


@pytest.mark.parametrize("upstream", ["new-connection", "keepalive"])
def test_injection_cost_per_request(topo, agent_factory, upstream):
    cg = TestCgroup()
    try:
        c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
        topo.link(c, "10.217.1.1", a, "10.217.1.2")
        topo.link(a, "10.217.2.1", b, "10.217.2.2")
        # A new upstream connection per request: thousands a second. Reuse
        # TIME-WAIT ports (these sysctls are per network namespace: ours).
        topo.sh(a, "sysctl -qw net.ipv4.tcp_tw_reuse=1 "
                   "net.ipv4.ip_local_port_range='1024 65000'")
        d = Path(f"/tmp/ht{topo.tag}")
        d.mkdir(exist_ok=True)
        leaf_dir = d / "leaf"
        leaf_dir.mkdir(exist_ok=True)
        tp_log = f"access_log {leaf_dir}/tp.log tp;"
        leaf, _, _ = nginx(topo, b, LEAF_CONF.format(d=leaf_dir, log=tp_log), "leaf")
        proxy_dir = d / "proxy"
        proxy_dir.mkdir(exist_ok=True)
        keepalive = "keepalive 64;" if upstream == "keepalive" else ""
        proxy, pids, _ = nginx(topo, a, PROXY_CONF.format(d=proxy_dir, keepalive=keepalive),
                               "proxy", cg)
        sel = []
        for p in pids:
            sel += ["--pid", str(p)]
        topo.mode = "warm-up"
        wrk(topo, c)
        runs = {"base": [], "trace": [], "inject": []}
        injected_share = []
        order = ["base", "trace", "inject", "trace", "inject", "base", "inject", "trace"]
        for i, mode in enumerate(order):
            agent = None
            if mode == "trace":
                agent = agent_factory(*sel, "--no-propagation", outputs=("none",),
                                      name=f"{upstream}-{i}")
            elif mode == "inject":
                agent = agent_factory(*sel, "--propagation-cgroup", str(cg.path),
                                      outputs=("none",), name=f"{upstream}-{i}")
            (leaf_dir / "tp.log").write_text("")
            topo.mode = mode
            runs[mode].append(wrk(topo, c))
            if agent:
                agent.stop()
            if mode == "inject":
                lines = (leaf_dir / "tp.log").read_text().splitlines()
                good = [x for x in lines if re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", x)]
                assert lines and all(x in ("", "-") or x in good for x in lines), lines[-3:]
                # With the read guard (kernels with the sockmap FIONREAD
                # regression), a keep-alive request written before the agent
                # put its socket back goes without traceparent.
                injected_share.append(len(good) / len(lines))
                assert good

        def mean(mode, key):
            return sum(r[key] for r in runs[mode]) / len(runs[mode])

        report = {m: {k: mean(m, k) for k in ("rps", "p50_ms", "p90_ms", "p99_ms")} for m in runs}
        # What one request costs the saturated path (1 / throughput: the
        # proxy's worker and the kernel under it), and what it adds to each
        # request's latency at this concurrency.
        us = {m: 1e6 / report[m]["rps"] for m in runs}
        report["extra_service_us_inject_vs_trace"] = us["inject"] - us["trace"]
        report["extra_service_us_trace_vs_base"] = us["trace"] - us["base"]
        report["extra_p50_us_inject_vs_trace"] = 1000 * (report["inject"]["p50_ms"] -
                                                         report["trace"]["p50_ms"])
        report["rps_ratio_inject_vs_trace"] = report["inject"]["rps"] / report["trace"]["rps"]
        report["rps_ratio_inject_vs_base"] = report["inject"]["rps"] / report["base"]["rps"]
        report["injected_share"] = min(injected_share)
        print(f"\nupstream {upstream}: " + json.dumps(report, indent=1))
        out = os.environ.get("HOPTRACE_BENCH_REPORT")
        if out:
            data = json.loads(Path(out).read_text()) if Path(out).exists() else {}
            data[upstream] = report
            Path(out).write_text(json.dumps(data, indent=1))
    finally:
        # Our nginx pair first (by pid), then the cgroup.
        for p in topo.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
        cg.remove(topo.procs)
