#!/usr/bin/python3
"""What the wake-up model (bpf/runtime_wakeup.bpf.h) costs, on a live agent.

Run as root next to a running `hoptrace run` with propagation on (Debian's
/usr/bin/python3; standard library and bpftool only):

  tests/bench/wakeup_cost.py [--seconds 20]

Enables the kernel's BPF run-time statistics for as long as it runs (the
BPF_ENABLE_STATS fd: nothing stays enabled after it exits), samples every
loaded program named ht_wk_* (and the syscall programs the model adds a call
to) at the start and the end, and prints runs per second, ns per run, and the
model's counters (ht_wk_counters: wake-ups seen within selected processes,
handed, ambiguous, ...).
"""
import argparse
import ctypes
import json
import os
import subprocess
import time

BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
NR_BPF = 321  # x86_64
PROGS = ("ht_wk_sched_waking", "ht_enter_connect", "ht_exit_connect", "ht_enter_write",
         "ht_exit_write", "ht_enter_sendto", "ht_exit_sendto")  # full names (BTF)
COUNTERS = ["seen", "handed", "ambiguous", "noise", "busy", "reader", "used", "pending",
            "epoch", "nothing"]


def enable_stats():
    attr = (ctypes.c_uint32 * 4)(BPF_STATS_RUN_TIME, 0, 0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(NR_BPF, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")
    return fd


def progs():
    out = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                                    text=True, check=True).stdout)
    return {p["id"]: p for p in out if p.get("name") in PROGS}


def counters():
    maps = json.loads(subprocess.run(["bpftool", "-j", "map", "show"], capture_output=True,
                                     text=True, check=True).stdout)
    total = [0] * len(COUNTERS)
    for m in maps:
        if m.get("name") == "ht_wk_counters":
            total = [a + b for a, b in zip(total, map_counters(m["id"]))]
    return dict(zip(COUNTERS, total))


def map_counters(map_id):
    r = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)],
                       capture_output=True, text=True)
    total = [0] * len(COUNTERS)
    if r.returncode != 0:
        return total
    for entry in json.loads(r.stdout):
        e = entry.get("formatted", entry)
        k = e["key"]
        if k < len(COUNTERS):
            total[k] += sum(v["value"] for v in e["values"])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    opts = ap.parse_args()
    fd = enable_stats()
    try:
        a, ca, t0 = progs(), counters(), time.time()
        time.sleep(opts.seconds)
        b, cb, t1 = progs(), counters(), time.time()
    finally:
        os.close(fd)
    dt = t1 - t0
    for pid, p in sorted(b.items(), key=lambda kv: kv[1]["name"]):
        q = a.get(pid, {})
        runs = p.get("run_cnt", 0) - q.get("run_cnt", 0)
        ns = p.get("run_time_ns", 0) - q.get("run_time_ns", 0)
        print(f"{p['name']:16} id {pid:6}  runs/s {runs / dt:10.0f}  ns/run "
              f"{(ns / runs if runs else 0):7.0f}  cpu {ns / dt / 1e7:.3f}%")
    print("ht_wk_counters over", f"{dt:.1f}s:",
          " ".join(f"{k}={cb.get(k, 0) - ca.get(k, 0)}" for k in COUNTERS))


if __name__ == "__main__":
    main()
