#!/usr/bin/python3
"""One cell row of the kernel matrix, measured on the kernel this runs on (a
guest of run_vm.sh, or the host itself for matrix.host).

Runs `hoptrace check` (its table and libbpf's log), the capture tests (a
read-only chain, and the agent started with propagation asked for where the
kernel-side contexts cannot run), the propagation tests that chain
unmodified services with injection on, and looks for hoptrace programs left
in the kernel; writes $HT_MATRIX_RESULTS/$HT_MATRIX_NAME.json. Nothing in
the row is hand-written: every verdict comes from those runs.

Exit status: 0 when the row was measured and every feature hoptrace
offers on this kernel works (capture, injection through the chain where
`hoptrace check` does not say the kernel lacks it, nothing left behind);
1 otherwise. The row is written in both cases: a kernel where
something does not load is a row with "no" and the kernel's reason, and a
failed ctest, not a crashed harness. Debian's /usr/bin/python3, standard
library only.

Time: a guest under TCG on a busy host is tens of times slower than the
host. `hoptrace check` runs once; the tests take its facts from it
(HOPTRACE_CHECK_OUTPUT) instead of running their own. Every wait of the
tests is scaled (HOPTRACE_TEST_TIME_SCALE) by how slowly the agent got ready
here. In a guest the tests get what is left of run_vm.sh's timeout
(HT_VM_TIMEOUT) less a margin, then are interrupted, so the row is written
before the VM is killed.
"""
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

# The integration tests' helper for what a process holds (the same tree in a guest).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import bpf_util  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HOPTRACE = os.environ.get("HOPTRACE_BIN", str(ROOT / "build" / "agent" / "hoptrace"))
NAME = os.environ.get("HT_MATRIX_NAME", "host")
RESULTS = Path(os.environ.get("HT_MATRIX_RESULTS", ROOT / "build" / "tests" / "matrix" / "results"))
# The chain tests: curl -> Python -> Python, and curl -> nginx -> Python ->
# Node -> Python, each service unmodified and in the test's own cgroup, the
# agent injecting; they assert the exact span tree and the traceparent each
# hop received.
CHAIN_TESTS = ["test_thread_per_request_python_to_python",
               "test_chain_nginx_python_node_without_header"]
# Capture on every kernel: curl -> Python -> Python read-only, the exact
# tree.
CAPTURE_TESTS = {"test_chain_without_header_starts_new_trace": "test_http_chain.py"}
# The fallback, where this kernel's check says the kernel-side contexts do
# not run (Debian 11: no bpf_loop): the agent asked for propagation starts,
# says why in one line, traces read-only, and check says the same. Where
# they run, the default suite forces the same path on the host
# (HOPTRACE_KERNEL_CONTEXT=off): run in a guest it would cost an agent and a
# check (2-4 min under TCG) and prove nothing about that kernel.
FALLBACK_TESTS = {"test_starts_without_kernel_contexts_where_bpf_loop_is_missing":
                  "test_propagation_routes.py"}
# How slow this machine is, for the tests' waits (HOPTRACE_TEST_TIME_SCALE,
# tests/integration/conftest.py): at least what the caller says (run_vm.sh:
# 10 under TCG), more when the agent here took longer than HOST_READY_S times
# that to get ready. HOST_READY_S: a real host's agent ready time, with
# margin (1.0 s measured on this 2-core host; the tests' waits are set for
# it, e.g. 20 s for ready).
HOST_READY_S = 2.0
# Seconds the cell keeps, of run_vm.sh's --timeout (HT_VM_TIMEOUT), for what
# follows the tests: their teardown after an interrupt, the row, power-off.
VM_MARGIN_S = 120
CHECK_RE = re.compile(r"^(ok     |MISSING|info   )  (.{34}) ?(.*)$")


def seconds_left():
    """Seconds this cell may still use in a guest (run_vm.sh kills the VM at
    HT_VM_TIMEOUT, counted from about the guest kernel's start), less the
    margin; None on the host (ctest's TIMEOUT bounds the cell there)."""
    limit = os.environ.get("HT_VM_TIMEOUT")
    if not limit:
        return None
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return max(0.0, float(limit) - VM_MARGIN_S - uptime)


def bounded(seconds):
    left = seconds_left()
    return seconds if left is None else max(1.0, min(seconds, left))


def time_scale(ready_s):
    """HOPTRACE_TEST_TIME_SCALE for the tests here: the caller's floor, or
    how much slower than a host the agent got ready here, whichever is more."""
    floor = max(1.0, float(os.environ.get("HOPTRACE_TEST_TIME_SCALE", "1")))
    if ready_s is None:
        return floor
    return max(floor, float(math.ceil(ready_s / HOST_READY_S)))


def run(argv, timeout, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or "", (e.stderr or "") + "\n(timed out)")


def parse_check(stdout):
    items = {}
    for line in stdout.splitlines():
        m = CHECK_RE.match(line)
        if m:
            mark, feature, detail = m.groups()
            detail = re.sub(r"\s+\[for: .*\]$", "", detail)
            items[feature.strip()] = {"ok": mark == "ok     ", "info": mark == "info   ",
                                      "detail": detail.strip()}
    return items


COST_RE = re.compile(r"^    (\S+)\s+(\S+)\s+(\d+|\?) insns")


VERIFIER_BUDGET = 250_000  # README "Verifier headroom"


def parse_costs(stdout):
    """check --verbose's cost lines: the most any program of each object
    cost, {object: [program, insns]} (insns None when unknown)."""
    most = {}
    for line in stdout.splitlines():
        m = COST_RE.match(line)
        if not m:
            continue
        obj, prog, n = m.group(1), m.group(2), None if m.group(3) == "?" else int(m.group(3))
        if obj not in most or (n or 0) > (most[obj][1] or 0):
            most[obj] = [prog, n]
    return most


def load_failures(log):
    """libbpf's log of the check's loads: a list of (object, {program: the
    verifier's last words}), one entry per failed object load, in order."""
    failures, pending, prog, last = [], {}, None, ""
    for line in log.splitlines():
        m = re.search(r"prog '([^']+)': BPF program load failed: (.*)", line)
        if m:
            pending.setdefault(m.group(1), m.group(2).strip())
            continue
        m = re.search(r"prog '([^']+)': -- BEGIN PROG LOAD LOG --", line)
        if m:
            prog, last = m.group(1), ""
            continue
        if prog and "-- END PROG LOAD LOG --" in line:
            if last:
                pending[prog] = last
            prog = None
            continue
        if prog:
            # Skip the instruction and state dump; keep the verifier's words.
            t = line.strip()
            if t and not re.match(r"^(\d+: |;|regs=|last_idx|from \d+ to|processed \d+ insns|"
                                  r"R\d|mark_precise|parent |frame\d|\.\.\.|caller:|callee:|"
                                  r"Func#|func#|stack depth|verification time)", t):
                last = t
            continue
        m = re.search(r"failed to load object '([^']+)'", line)
        if m:
            failures.append((m.group(1), pending))
            pending = {}
    return failures


def describe(reasons):
    return "; ".join(f"{p}: {r}" for p, r in reasons.items())


def agent_ready_seconds(tmp):
    """How long `hoptrace run` takes from exec to "hoptrace ready" here
    (capture and network probes loaded and attached, selecting only this
    script): under TCG the verifier is emulated too. The tests' waits are
    scaled by it (time_scale)."""
    log = Path(tmp) / "ready.log"
    t0 = time.time()
    limit = bounded(240)
    p = subprocess.Popen([HOPTRACE, "run", "--pid", str(os.getpid()), "--output", "none",
                          "--duration", "300"], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        while time.time() - t0 < limit:
            if "hoptrace ready" in log.read_text():
                return round(time.time() - t0, 1)
            if p.poll() is not None:
                return None
            time.sleep(0.05)
        return None
    finally:
        if p.poll() is None:
            p.send_signal(2)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def netns_names():
    r = run(["ip", "netns", "list"], timeout=30)
    return {l.split()[0] for l in r.stdout.splitlines() if l.strip()}


def run_tests(tmp, tests, scale, check_record):
    """tests: {test function: file in tests/integration}. Returns pytest's
    output, whether it ran out of time, and each test's outcome."""
    junit = Path(tmp) / "junit.xml"
    env = dict(os.environ, HOPTRACE_BIN=HOPTRACE, HOPTRACE_TEST_TIME_SCALE=f"{scale:g}")
    # The facts of this cell's own `hoptrace check`: the tests that only ask
    # what the kernel lacks do not run it again (minutes under emulation).
    if check_record:
        env["HOPTRACE_CHECK_OUTPUT"] = str(check_record)
    # Skips for what the kernel lacks are verdicts here, not failures.
    env["HOPTRACE_MAX_SKIPS"] = str(len(tests))
    # The tests' own namespaces, by name: on a shared host others come and go.
    env["HOPTRACE_NETNS_LOG"] = str(Path(tmp) / "netns.log")
    ids = [str(ROOT / "tests" / "integration" / f) + "::" + t for t, f in tests.items()]
    out = Path(tmp) / "pytest.out"
    left = seconds_left()
    timeout = 1200 if left is None else max(1.0, left)
    with open(out, "w") as f:
        p = subprocess.Popen(["/usr/bin/python3", "-m", "pytest", "-v", "-p", "no:cacheprovider", "--durations=0",
                              "-rA", f"--junitxml={junit}"] + ids, stdout=f,
                             stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        timed_out = False
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Interrupted, pytest tears the running test down (its agent,
            # services, namespaces) and still writes the finished tests'
            # results.
            timed_out = True
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=VM_MARGIN_S / 2)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    text = out.read_text(errors="replace")
    if timed_out:
        text += f"\n(cell: pytest interrupted after {timeout:.0f} s, the cell's time)"
    missing = ("the cell's time ran out before this test finished" if timed_out else
               f"pytest exited {p.returncode} without a result for it")
    outcomes = {t: {"outcome": "not run", "reason": missing, "message": ""} for t in tests}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name")
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    message = ((el.get("message") or "") + "\n" + (el.text or "")).strip()
            outcomes[name] = {"outcome": outcome, "reason": why_failed(message) if message else "",
                              "message": message[-3000:]}
    return text, timed_out, outcomes


def ht_programs():
    """hoptrace's programs in the kernel: id -> held by a live process."""
    r = run(["bpftool", "-j", "prog", "list"], timeout=60)
    try:
        progs = json.loads(r.stdout or "[]")
    except ValueError:
        return None
    held = bpf_util.prog_ids_held_anywhere()
    return {p["id"]: p["id"] in held for p in progs if p.get("name", "").startswith("ht_")}


def why_failed(message):
    """A failed test's reason in one line: the agent's own error when it
    printed one (it exits early when a program does not load), else the
    assertion's first line."""
    lines = [l.strip() for l in message.splitlines() if l.strip()]
    errors = [re.sub(r"^\S+ error ", "", l) for l in lines if re.match(r"^\S+ error ", l)]
    return errors[-1] if errors else (lines[0] if lines else "")


def main():
    started = time.time()
    in_vm = os.environ.get("HT_MATRIX_VM") == "1"
    before = ht_programs() or {}
    row = {"name": NAME, "kernel": platform.release(), "where": "qemu tcg" if in_vm else "host",
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # --verbose: also each program's processed instructions (the verifier's
    # headroom on this kernel), loaded as `run` loads it by default.
    t0 = time.time()
    chk = run([HOPTRACE, "check", "--verbose", "--log-level", "debug"], timeout=bounded(1200))
    row["check_s"] = round(time.time() - t0, 1)
    # libbpf's log without the verifier's instruction dumps, which run to MBs.
    log = "\n".join(l for l in chk.stderr.splitlines()
                    if not re.match(r"^(\d+: |; |regs=|last_idx|R\d|mark_precise|parent |from \d+ to)", l))
    row["check"] = {"rc": chk.returncode, "stdout": chk.stdout, "log": log[-20000:]}
    print(chk.stdout, flush=True)
    items = parse_check(chk.stdout)
    row["verifier_most"] = parse_costs(chk.stdout)
    failures = load_failures(chk.stderr)

    def item(feature):
        return items.get(feature, {"ok": False, "detail": "not reported by hoptrace check"})

    def failed(obj):
        return [r for o, r in failures if o == obj]

    def verdict(it, reasons):
        # check's own words, and the verifier's when libbpf printed them.
        detail = it["detail"]
        if not it["ok"] and reasons:
            detail += "; " + describe(reasons)
        return {"ok": it["ok"], "detail": detail}

    capture = item("HTTP capture programs")
    net = item("network probe programs")
    ctx = item("kernel-side trace contexts")
    # "context propagation" alone when the kernel cannot do it at all (a
    # helper it lacks: a verdict), or when the capture with contexts did not
    # load (a failure, never counted as the kernel's).
    prop = items.get("context propagation programs") or item("context propagation")
    prop_offered = ("context propagation" not in items or
                    "does not load" in items["context propagation"]["detail"])
    fion = items.get("FIONREAD on sockhash sockets")
    # check loads the capture build (socket_trace_capture), the network
    # probes, the build with kernel-side contexts (socket_trace), then the
    # propagation object.
    row["capture"] = verdict(capture, (failed("socket_trace_capture_bpf") or [{}])[0])
    row["net_probes"] = verdict(net, (failed("net_probe_bpf") or [{}])[0])
    row["kernel_context"] = verdict(ctx, (failed("socket_trace_bpf") or [{}])[0])
    prop_fail = failed("propagation_bpf")
    row["propagation_object"] = {"ok": not prop_fail and prop["ok"],
                                 "detail": "loaded and verified" if prop["ok"] else
                                 "load failed; " + describe(prop_fail[0]) if prop_fail else prop["detail"]}
    if fion is None:
        row["read_guard"] = {"needed": None, "detail": "not probed (propagation did not load)"}
    else:
        row["read_guard"] = {"needed": not fion["ok"], "detail": fion["detail"]}

    capture_tests = dict(CAPTURE_TESTS, **(FALLBACK_TESTS if not ctx["ok"] else {}))
    tests = dict(capture_tests, **{t: "test_propagation.py" for t in CHAIN_TESTS})
    with tempfile.TemporaryDirectory() as tmp:
        row["agent_ready_s"] = agent_ready_seconds(tmp) if capture["ok"] else None
        row["time_scale"] = time_scale(row["agent_ready_s"])
        record = None
        if chk.returncode != 124:
            # What the tests may take from this check instead of running
            # their own: its table, with what makes it this machine's.
            record = Path(tmp) / "check.json"
            record.write_text(json.dumps({
                "bin": HOPTRACE, "kernel": platform.release(),
                "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                "lines": chk.stdout.splitlines()}))
        t0 = time.time()
        if capture["ok"]:
            text, timed_out, outcomes = run_tests(tmp, tests, row["time_scale"], record)
            row["pytest_timed_out"] = timed_out
            row["pytest_tail"] = text[-4000:]
            made = Path(tmp) / "netns.log"
            ours = set(made.read_text().split()) if made.exists() else set()
            left_ns = sorted(ours & netns_names())
        else:
            left_ns = []
            # The agent cannot start without its capture (minutes of emulated
            # setup for a foregone failure).
            outcomes = {t: {"outcome": "not run", "reason": "the capture object does not load",
                            "message": ""} for t in tests}
            row["pytest_tail"] = ""
        row["chain_tests_s"] = round(time.time() - t0, 1)
    print(row["pytest_tail"], flush=True)

    def bad(names):
        return [f"{t}: {outcomes[t]['outcome']}: {outcomes[t].get('reason', '')}"
                for t in names if outcomes[t]["outcome"] != "passed"]

    row["capture_tests"] = {t: outcomes[t] for t in capture_tests}
    capture_bad = bad(capture_tests)
    row["capture_tests_ok"] = {"ok": not capture_bad, "detail": "; ".join(capture_bad)}
    row["chain_tests"] = {t: outcomes[t] for t in CHAIN_TESTS}
    chain_bad = bad(CHAIN_TESTS)
    # Where check says the kernel lacks propagation, the chain tests skip
    # (kernel_lacks) and the row says what is off: a verdict, not a failure.
    lacked = not prop_offered and all(
        outcomes[t]["outcome"] == "skipped" and outcomes[t]["message"].startswith("kernel lacks")
        for t in CHAIN_TESTS)
    row["injection"] = {"ok": not chain_bad, "offered": prop_offered,
                        "detail": "chain tests pass" if not chain_bad else
                        ("off: " + prop["detail"].removeprefix("off: ")) if lacked else
                        "; ".join(chain_bad)}
    injection_ok = row["injection"]["ok"] or lacked

    after = ht_programs()
    if after and any(i not in before and not h for i, h in after.items()):
        # An agent that just exited (another user's, on a shared host) may
        # still be tearing down: look again before calling anything ours.
        time.sleep(3)
        after = ht_programs()
    if after is None:
        row["leftover_programs"] = {"ok": False, "detail": "bpftool prog list failed"}
    else:
        # On the host other people's agents may be running: only programs that
        # appeared during this run and no live process holds count as ours.
        left = sorted(i for i, held in after.items() if i not in before and not held)
        row["leftover_programs"] = {"ok": not left, "ids": left,
                                    "detail": "none" if not left else f"{len(left)} ht_ programs left"}
    row["leftover_netns"] = {"ok": not left_ns, "names": left_ns, "detail": "none" if not left_ns
                             else f"{len(left_ns)} network namespaces left"}
    # Every program within the budget of README "Verifier headroom" (25 %
    # of the verifier's million instructions), as `run` loads it by default
    # on this kernel: the host's verifier.config_matrix holds every
    # configuration to it, the guests the default one.
    over = {obj: pn for obj, pn in row["verifier_most"].items() if (pn[1] or 0) > VERIFIER_BUDGET}
    row["verifier_budget"] = {
        "ok": not over,
        "detail": "within" if not over else "; ".join(
            f"{obj} {prog} {n} > {VERIFIER_BUDGET}" for obj, (prog, n) in sorted(over.items()))}
    row["cell_s"] = round(time.time() - started, 1)

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{NAME}.json"
    out.write_text(json.dumps(row, indent=2) + "\n")
    summary = {k: row[k]["ok"] if isinstance(row[k], dict) and "ok" in row[k] else row[k]
               for k in ("capture", "kernel_context", "propagation_object", "injection",
                         "net_probes", "leftover_programs")}
    print(f"cell {NAME} ({row['kernel']}): {json.dumps(summary)} -> {out}", flush=True)
    for k in ("capture", "kernel_context", "propagation_object", "injection", "net_probes"):
        if not row[k]["ok"]:
            print(f"  {k}: no: {row[k]['detail']}", flush=True)
    print(f"  check {row['check_s']} s; agent ready after {row['agent_ready_s']} s; "
          f"tests (waits x{row['time_scale']:g}) {row['chain_tests_s']} s", flush=True)
    if capture_bad:
        print(f"  capture tests: {row['capture_tests_ok']['detail']}", flush=True)
    if not row["verifier_budget"]["ok"]:
        print(f"  verifier budget: over: {row['verifier_budget']['detail']}", flush=True)
    ok = (capture["ok"] and not capture_bad and injection_ok and row["leftover_programs"]["ok"]
          and row["leftover_netns"]["ok"] and row["verifier_budget"]["ok"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
