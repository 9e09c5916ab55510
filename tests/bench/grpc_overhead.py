#!/usr/bin/python3
"""What tracing a gRPC server costs per call: a Node @grpc/grpc-js server
(tests/integration/services/grpc_service.js) answering unary SayHello calls
from a python3-grpcio load loop (--calls per round over one channel, one call
in flight), alternating rounds without and with `hoptrace run --pid SERVER
--output none` in the same session, so drift hits both. Prints calls/s per
round, the ratio traced/untraced, the µs added per call, and the agent's
spans built against calls made. No pass/fail threshold.

    sudo /usr/bin/python3 tests/bench/grpc_overhead.py [--calls 5000] [--rounds 3]

Run with Debian's /usr/bin/python3 (python3-grpcio); needs root (the agent)
and tests/integration/otlp/node_modules (scripts/setup.sh --tests)."""
import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[2]
HOPTRACE = os.environ.get("HOPTRACE_BIN", str(ROOT / "build" / "agent" / "hoptrace"))
PORT = 50777


def load(calls):
    with grpc.insecure_channel(f"127.0.0.1:{PORT}") as ch:
        call = ch.unary_unary("/helloworld.Greeter/SayHello")
        call(b"warm", timeout=10)
        t0 = time.perf_counter()
        for _ in range(calls):
            call(b"world", timeout=10)
        return calls / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    env = dict(os.environ, NODE_PATH=str(ROOT / "tests/integration/otlp/node_modules"))
    server = subprocess.Popen(["node", str(ROOT / "tests/integration/services/grpc_service.js"),
                               "serve", "127.0.0.1", str(PORT)], env=env,
                              stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline().strip() == b"listening"
        rates = {"untraced": [], "traced": []}
        spans = []
        for r in range(args.rounds):
            rates["untraced"].append(load(args.calls))
            log = Path(f"/tmp/hoptrace-grpc-bench-{os.getpid()}.log")
            agent = subprocess.Popen([HOPTRACE, "run", "--pid", str(server.pid),
                                      "--output", "none"], stdout=subprocess.DEVNULL,
                                     stderr=open(log, "w"))
            while "hoptrace ready" not in log.read_text():
                assert agent.poll() is None, log.read_text()
                time.sleep(0.05)
            rates["traced"].append(load(args.calls))
            time.sleep(0.5)
            agent.send_signal(signal.SIGINT)
            agent.wait(timeout=30)
            m = re.findall(r"stats \(final\):.* spans=(\d+)", log.read_text())
            spans.append(int(m[-1]) if m else -1)
            log.unlink()
            print(f"round {r + 1}: untraced {rates['untraced'][-1]:.0f} calls/s, "
                  f"traced {rates['traced'][-1]:.0f} calls/s, spans {spans[-1]} "
                  f"of {args.calls + 1} calls", flush=True)
        u = sorted(rates["untraced"])[len(rates["untraced"]) // 2]
        t = sorted(rates["traced"])[len(rates["traced"]) // 2]
        print(f"median: untraced {u:.0f} calls/s, traced {t:.0f} calls/s, ratio {t / u:.2f}, "
              f"added {1e6 / t - 1e6 / u:.1f} us per call")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
