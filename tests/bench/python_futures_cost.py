#!/usr/bin/python3
"""What following Python's pool Futures costs (bpf/runtime_python.bpf.h,
"Futures handed to a thread pool"): in one CPython 3.11 process, rounds
without and with the agent following it (--pid) alternate, and each round
times, per operation:

  lock     threading.Lock() acquire + release (Debian's python3.11 inlines
           its own copy of PyThread_acquire_lock_timed there: no trap)
  racq     threading.RLock() acquire + release (a trap at the exported
           PyThread_acquire_lock_timed, one hash lookup)
  rlock    threading.RLock() made (PyThread_allocate_lock: two traps, a
           uretprobe, the thread's request looked up)
  submit   ThreadPoolExecutor.submit(noop).result(): a whole hand-over (a
           Future's lock made, taken by the worker twice, the waiter's)

Prints each round, then the median of on - off and its spread (min..max).
Runs Debian's /usr/bin/python3 (3.11) for itself and the target; needs root.

  sudo tests/bench/python_futures_cost.py [--build DIR] [--ops N] [--rounds R]
No pass/fail threshold.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/integration"))
from propagation_util import TestCgroup  # noqa: E402  (the tests' cgroup v2 helper)
TARGET = r"""
import concurrent.futures, sys, threading, time
pool = concurrent.futures.ThreadPoolExecutor(2)
pool.submit(int).result()
def per_op(fn, n):
    t = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t) / n
def lock(n):
    l = threading.Lock()
    for _ in range(n):
        l.acquire()
        l.release()
def racq(n):
    l = threading.RLock()
    for _ in range(n):
        l.acquire()
        l.release()
def rlock(n):
    for _ in range(n):
        threading.RLock()
def submit(n):
    for _ in range(n // 20):
        pool.submit(int).result()
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    print(f"{per_op(lock, n):.0f} {per_op(racq, n):.0f} {per_op(rlock, n):.0f} "
          f"{per_op(submit, n) * 20:.0f}", flush=True)
"""
OPS = ("lock", "racq", "rlock", "submit")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--ops", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("python_futures_cost: needs root")
    agent_bin = Path(opts.build) / "agent/hoptrace"
    # The runtime models follow processes only with kernel-side contexts,
    # i.e. with propagation on: a cgroup of the target's own.
    cg = TestCgroup()
    target = subprocess.Popen(["/usr/bin/python3", "-c", TARGET], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, preexec_fn=cg.preexec())
    agent = None
    try:
        assert target.stdout.readline().strip() == "ready"

        def measure(label):
            target.stdin.write(f"{opts.ops}\n")
            target.stdin.flush()
            vals = [float(v) for v in target.stdout.readline().split()]
            print(f"{label:4} " + " ".join(f"{o}={v:.0f}ns" for o, v in zip(OPS, vals)), flush=True)
            return vals

        diffs = {o: [] for o in OPS}
        for _ in range(opts.rounds):
            off = measure("off")
            log = open("/tmp/python_futures_cost.agent.log", "w")
            agent = subprocess.Popen([str(agent_bin), "run", "--pid", str(target.pid),
                                      "--propagation-cgroup", str(cg.path), "--output", "none"],
                                     stdout=log, stderr=log)
            deadline = time.time() + 30
            while time.time() < deadline:
                text = open(log.name).read()
                if f"python: pid {target.pid}: python contexts" in text:
                    break
                time.sleep(0.1)
            else:
                sys.exit("python_futures_cost: the agent did not follow the target:\n" + text)
            if "pool Futures not followed" in text:
                sys.exit("python_futures_cost: " + text)
            on = measure("on")
            agent.terminate()
            agent.wait(timeout=30)
            agent = None
            for o, a, b in zip(OPS, on, off):
                diffs[o].append(a - b)
        print("added per operation, median (min..max) of on - off over "
              f"{opts.rounds} rounds of {opts.ops}:")
        for o in OPS:
            d = diffs[o]
            print(f"  {o:6} {statistics.median(d):7.0f} ns ({min(d):.0f}..{max(d):.0f})")
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=30)
        target.stdin.close()
        target.wait(timeout=30)
        cg.remove([target])


if __name__ == "__main__":
    main()
