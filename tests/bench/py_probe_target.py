#!/usr/bin/env python3
"""The Python function probe benchmark's target (python_probe_overhead.sh).

For each line N read from stdin: N calls of probed(), N calls of
unprobed(), and N turns of the same loop without a call; prints
"probed_ns X unprobed_ns Y loop_ns Z" (per call, the loop's own cost
subtracted from the first two).
"""
import sys
import time


def probed():
    pass


def unprobed():
    pass


def timed(f, n):
    t = time.perf_counter_ns()
    for _ in range(n):
        f()
    return (time.perf_counter_ns() - t) / n


def loop(n):
    t = time.perf_counter_ns()
    for _ in range(n):
        pass
    return (time.perf_counter_ns() - t) / n


print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    base = loop(n)
    p = timed(probed, n) - base
    u = timed(unprobed, n) - base
    print(f"probed_ns {p:.0f} unprobed_ns {u:.0f} loop_ns {base:.0f}", flush=True)
