"""Shared fixtures of hoptrace's integration tests.

Real kernel, real BPF, real unmodified processes. Every test builds its own
network namespaces (`ip netns`, veth) and starts its own servers inside
them; the agent selects only those processes (by pid). Nothing here touches
a process or an address the test did not create.
"""
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = Path(__file__).resolve().parent / "services"
PYTHON = "/usr/bin/python3"
# How many times slower than a real host this machine runs the agent, the
# verifier and the services: every wait of these helpers (agent ready, spans,
# heads, curl, `hoptrace check`, teardown) is its host value times this. 1 on
# a host; the kernel matrix's guests run under emulation (TCG: every
# instruction, the verifier's too) and set it from what the cell measured
# (tests/matrix/cell.py). Only waits scale: what a test asserts does not.
TIME_SCALE = max(1.0, float(os.environ.get("HOPTRACE_TEST_TIME_SCALE", "1")))


def scaled(seconds):
    """A host wait in seconds, on this machine."""
    return seconds * TIME_SCALE


# Seconds the agent gets from exec to "hoptrace ready": 20 on a real host.
# HOPTRACE_READY_TIMEOUT sets it outright.
READY_TIMEOUT = float(os.environ.get("HOPTRACE_READY_TIMEOUT", scaled(20)))

# tests/integration/otlp holds the OTLP tests' Node tools (and node_modules),
# not tests; its fixtures (receiver, receivers, sdk_services) are shared here.
collect_ignore = ["otlp"]
from otlp.fixtures import receiver, receivers, sdk_services  # noqa: E402,F401


def hoptrace_bin():
    path = os.environ.get("HOPTRACE_BIN", str(ROOT / "build" / "agent" / "hoptrace"))
    if not os.access(path, os.X_OK):
        pytest.fail(f"hoptrace binary not found at {path}: build first or set HOPTRACE_BIN")
    return path


if os.geteuid() != 0:
    raise pytest.UsageError("integration tests need root (real BPF, network namespaces): "
                            "run ./scripts/test.sh as root")


# --- No silent skips -------------------------------------------------------
# A test that cannot run where it is must find what it needs or fail with
# the reason. The one allowed skip is a kernel that truly lacks a feature,
# and only when `hoptrace check` says so too: kernel_lacks() below is the
# only way to skip. Every skip is appended to $HOPTRACE_SKIP_LOG (the test
# command lists them at the end), and a session that skips more than
# --max-skips (default 0; $HOPTRACE_MAX_SKIPS) fails.

KERNEL_LACKS = "kernel lacks"


def pytest_addoption(parser):
    parser.addoption("--max-skips", type=int,
                     default=int(os.environ.get("HOPTRACE_MAX_SKIPS", "0")),
                     help="fail the session when more tests than this are skipped")


_check_cache = {}


def check_reused():
    """The lines of a `hoptrace check` a harness already ran here, when
    $HOPTRACE_CHECK_OUTPUT names its record ({"bin", "kernel", "boot_id",
    "lines"}: tests/matrix/cell.py writes one): the same binary on this same
    boot of this kernel says the same, and under emulation a check costs
    minutes. Any other record is ignored and check runs."""
    path = os.environ.get("HOPTRACE_CHECK_OUTPUT")
    if not path:
        return None
    try:
        rec = json.loads(Path(path).read_text())
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except (OSError, ValueError):
        return None
    if (rec.get("bin") != hoptrace_bin() or rec.get("kernel") != os.uname().release
            or rec.get("boot_id") != boot_id or not isinstance(rec.get("lines"), list)):
        return None
    return rec["lines"]


def check_lines():
    """`hoptrace check`'s output, one string per line (run once a session;
    a check that does not finish fails every test that asks, at once after
    the first)."""
    if "out" not in _check_cache:
        lines = check_reused()
        if lines is None:
            try:
                r = subprocess.run([hoptrace_bin(), "check"], capture_output=True, text=True,
                                   timeout=scaled(120))
                lines = (r.stdout + r.stderr).splitlines()
            except subprocess.TimeoutExpired:
                _check_cache["error"] = f"hoptrace check did not finish in {scaled(120):.0f} s"
        _check_cache["out"] = lines
    if _check_cache["out"] is None:
        pytest.fail(_check_cache["error"])
    return _check_cache["out"]


def require_propagation():
    """Skips the calling test where this kernel cannot inject traceparent
    (`hoptrace check`: MISSING context propagation, e.g. no bpf_loop before
    Linux 5.17); anywhere else the test runs."""
    for line in check_lines():
        if line.startswith("MISSING") and "context propagation" in line.lower():
            kernel_lacks("context propagation", "traceparent injection cannot work here")


def kernel_lacks(feature, why):
    """Skips the calling test because this kernel cannot do `feature`, but
    only if `hoptrace check` has a MISSING line naming the feature; else the
    test fails: either the test or the check is wrong."""
    for line in check_lines():
        if line.startswith("MISSING") and feature.lower() in line.lower():
            pytest.skip(f"{KERNEL_LACKS} {feature}: {why} (hoptrace check: {line.strip()})")
    pytest.fail(f"test wanted to skip for lack of '{feature}' ({why}), but hoptrace check "
                f"does not say it is missing:\n" + "\n".join(check_lines()))


def span_table(spans):
    """One line per span, in start order: what a failed test's trace looked
    like, for the report (ids shortened; trace ids to 8 hex digits)."""
    lines = []
    for s in sorted(spans, key=lambda s: s.get("start_time_unix_nano", 0)):
        res = s.get("resource", {}).get("attributes", {})
        a = s.get("attributes", {})
        extra = " ".join(f"{k}={a[k]}" for k in ("hoptrace.go.g", "thread.id", "error.type")
                         if k in a)
        lines.append(f"{s.get('start_time_unix_nano', 0) % 10**12:>13} "
                     f"{s.get('trace_id', '')[:8]} {s.get('span_id', '')} "
                     f"<- {s.get('parent_span_id') or '-':16} {s.get('kind', ''):8} "
                     f"{res.get('service.name', '')}[{res.get('process.pid', '')}] "
                     f"{s.get('name', '')} {extra}")
    return "\n".join(lines)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when == "call":
        # What the agents saw: the next person reads this, not a rerun.
        for i, agent in enumerate(getattr(item, "hoptrace_agents", [])):
            try:
                rep.sections.append((f"agent {i} spans", span_table(agent.spans())))
                rep.sections.append((f"agent {i} log (tail)",
                                     "\n".join(agent.log_text().splitlines()[-40:])))
            except (OSError, ValueError) as e:
                rep.sections.append((f"agent {i}", f"unreadable: {e}"))
    if not rep.skipped or hasattr(rep, "wasxfail"):
        return
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not reason.startswith(KERNEL_LACKS):
        rep.outcome = "failed"
        rep.longrepr = (f"skipped without a kernel reason, which is not allowed "
                        f"(find what the test needs, or fail): {reason}")
        return
    log = os.environ.get("HOPTRACE_SKIP_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{item.nodeid}\t{reason}\n")


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        reap_stopping()
    except AssertionError as e:
        if reporter:
            reporter.write_line(f"hoptrace: {e}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    allowed = session.config.getoption("--max-skips")
    if skipped > allowed:
        if reporter:
            reporter.write_line(f"hoptrace: {skipped} tests skipped, {allowed} allowed: failing")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class Topology:
    """Network namespaces joined by veth pairs, all named after this test."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces = []
        self.procs = []
        self._link = 0

    def ns(self, name):
        full = f"ht{self.tag}{name}"
        subprocess.run(["ip", "netns", "add", full], check=True)
        self.namespaces.append(full)
        # Who made which namespace, for a harness on a shared host (the
        # kernel matrix's host row) that checks none of its own is left.
        if os.environ.get("HOPTRACE_NETNS_LOG"):
            with open(os.environ["HOPTRACE_NETNS_LOG"], "a") as f:
                f.write(full + "\n")
        self.sh(full, "ip link set lo up")
        return full

    def sh(self, ns, cmd):
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", cmd], check=True)

    def link(self, ns_a, addr_a, ns_b, addr_b, prefix=24):
        """veth between two namespaces; addresses without prefix."""
        self._link += 1
        a, b = f"v{self.tag}{self._link}a", f"v{self.tag}{self._link}b"
        subprocess.run(["ip", "link", "add", a, "netns", ns_a, "type", "veth",
                        "peer", "name", b, "netns", ns_b], check=True)
        self.sh(ns_a, f"ip addr add {addr_a}/{prefix} dev {a} && ip link set {a} up")
        self.sh(ns_b, f"ip addr add {addr_b}/{prefix} dev {b} && ip link set {b} up")
        return a, b

    def start(self, ns, argv, env=None, **kw):
        full_env = dict(os.environ)
        full_env.pop("OTEL_SERVICE_NAME", None)
        full_env.update(env or {})
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, env=full_env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def service(self, ns, host, port, name, sleep_ms=0, downstream="", env=None, **kw):
        """Starts tests/integration/services/http_service.py as `name`.py, so
        its derived service name is `name` unless env says otherwise. kw: for
        Popen (preexec_fn)."""
        script = Path(f"/tmp/ht{self.tag}") / f"{name}.py"
        script.parent.mkdir(exist_ok=True)
        if not script.exists():
            script.symlink_to(SERVICES / "http_service.py")
        argv = [PYTHON, str(script), "--host", host, "--port", str(port),
                "--sleep-ms", str(sleep_ms)]
        if downstream:
            argv += ["--downstream", downstream]
        p = self.start(ns, argv, env=env, **kw)
        line = p.stdout.readline()
        assert line.strip() == b"listening", f"{name} did not start"
        return p

    def curl(self, ns, url, *extra, timeout=20):
        r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null",
                            "-w", "%{http_code}", "-m", str(scaled(timeout))] + list(extra) + [url],
                           capture_output=True, text=True)
        return r.stdout

    def python(self, ns, code, timeout=30):
        """Runs Python code (a client, say) inside namespace ns; returns the
        CompletedProcess (text, stdout/stderr captured). Fails on timeout
        (host seconds, scaled)."""
        timeout = scaled(timeout)
        try:
            return subprocess.run(["ip", "netns", "exec", ns, PYTHON, "-c", code],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"python client in {ns} did not finish in {timeout}s")

    def open_sockets(self, ns, port):
        """TCP sockets of namespace ns from or to `port` that a process still
        holds: every state but LISTEN and TIME-WAIT (whose fd is gone)."""
        r = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tanH", "state", "all",
                            "exclude", "listening", "exclude", "time-wait",
                            f"( sport = :{port} or dport = :{port} )"],
                           capture_output=True, text=True, check=True)
        return [line for line in r.stdout.splitlines() if line.strip()]

    def wait_sockets_closed(self, ns, port, timeout=10):
        """Waits until every connection from or to `port` in ns is closed by
        its process (so a traced process has made its close(2)); returns the
        sockets still open (empty on success)."""
        deadline = time.time() + scaled(timeout)
        while True:
            left = self.open_sockets(ns, port)
            if not left or time.time() > deadline:
                return left
            time.sleep(0.05)

    def cleanup(self):
        # Our own children only, by pid. SIGTERM first: a server with workers
        # (nginx) takes them down with it; SIGKILL would orphan them. Their
        # descendants are noted first: one still alive once its parent is
        # gone (an nginx worker whose master was killed, or left it behind)
        # is ours too, killed by pid if it is still the same process.
        kin = [d for p in self.procs if p.poll() is None for d in descendants(p.pid)]
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=scaled(5))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=scaled(10))
        kill_survivors(kin)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        subprocess.run(["rm", "-rf", f"/tmp/ht{self.tag}"], check=False)


def proc_start_time(pid):
    """The process's start time (clock ticks since boot, /proc/PID/stat
    field 22): with the pid, who it is. None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def children(pid):
    """The child processes of pid, now (any of its threads may have forked
    one: gunicorn's workers, nginx's)."""
    kids = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids.update(map(int, (task / "children").read_text().split()))
        except OSError:
            pass
    return sorted(kids)


def descendants(pid):
    """[(pid, start time)] of every process below pid, now."""
    out, todo = [], [pid]
    while todo:
        for k in children(todo.pop()):
            out.append((k, proc_start_time(k)))
            todo.append(k)
    return [(k, t) for k, t in out if t is not None]


def kill_survivors(kin):
    """SIGKILL, by pid, each (pid, start time) of descendants() still that
    same process: what outlived the parent a test ended."""
    for pid, started in kin:
        if proc_start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# Agents whose test is over, told to stop at its teardown (SIGINT) but not
# waited for there: closing their probes costs the agent a kernel grace
# period each (seconds for a few dozen), which now overlaps the next test.
# Such an agent selects only processes that are gone and stops reading
# events at the signal. Each is waited for (and must exit 0) before a later
# test stops an agent of its own (so what a test checks after its agent's
# stop is the kernel without any of ours) and at the end of the session
# (none outlives it).
_stopping = []


def reap_stopping():
    """Waits for every agent stopped at a teardown; fails if one does not exit."""
    while _stopping:
        a = _stopping.pop(0)
        try:
            a.proc.wait(timeout=scaled(20))
        except subprocess.TimeoutExpired:
            a.proc.kill()
            a.proc.wait()
            raise AssertionError(f"the agent of an earlier test ({a.log}) did not stop in "
                                 f"{scaled(20):.0f} s after SIGINT (killed):\n"
                                 f"{a.log_text()[-3000:]}")
        assert a.proc.returncode == 0, (f"the agent of an earlier test ({a.log}) exited "
                                        f"{a.proc.returncode}:\n{a.log_text()[-3000:]}")


class Agent:
    """hoptrace run, writing JSON lines to a file the test reads.

    outputs: the --output sinks, in order ("jsonl" always writes to self.out).
    env: when given, the agent's environment is this one's without any
    OTEL_* variable, plus env (so a test sets exactly the OTEL_* it means).
    name: suffix of the spans/log file names, for several agents in one test."""

    def __init__(self, tmp_path, args, env=None, outputs=("jsonl",), name=""):
        suffix = f"-{name}" if name else ""
        self.out = tmp_path / f"spans{suffix}.jsonl"
        self.log = tmp_path / f"agent{suffix}.log"
        self.args = args
        self.env = env
        self.outputs = list(outputs)
        self.proc = None
        self.final_stats = None

    def start(self, timeout=None):
        timeout = READY_TIMEOUT if timeout is None else timeout
        argv = [hoptrace_bin(), "run"]
        for o in self.outputs:
            argv += ["--output", o]
        if "jsonl" in self.outputs:
            argv += ["--output-file", str(self.out)]
        env = None
        if self.env is not None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
            env.update(self.env)
        self.proc = subprocess.Popen(argv + self.args, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"), env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "hoptrace ready" in self.log_text():
                return self
            if self.proc.poll() is not None:
                pytest.fail(f"agent exited early:\n{self.log_text()}")
            time.sleep(0.05)
        pytest.fail(f"agent not ready in {timeout}s:\n{self.log_text()}")

    def log_text(self):
        return self.log.read_text() if self.log.exists() else ""

    def spans(self):
        if not self.out.exists():
            return []
        # Only whole lines: the agent may be writing the last one right now.
        lines = self.out.read_text().split("\n")[:-1]
        return [json.loads(line) for line in lines if line.strip()]

    def wait_spans(self, pred, timeout=15):
        """Waits until pred(spans) is true (timeout: host seconds, scaled);
        returns the spans."""
        deadline = time.time() + scaled(timeout)
        while True:
            spans = self.spans()
            if pred(spans):
                return spans
            if time.time() > deadline:
                return spans
            assert self.proc.poll() is None, f"agent died:\n{self.log_text()}"
            time.sleep(0.1)

    def stop(self):
        reap_stopping()  # an earlier test's agent first
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=scaled(20))
        m = re.findall(r"stats \(final\): (.*)", self.log_text())
        if m:
            self.final_stats = dict(kv.split("=", 1) for kv in m[-1].split())
        return self.proc.returncode if self.proc else None

    def stop_later(self):
        """SIGINT now, the wait in reap_stopping(): for a teardown, where
        nothing reads the agent's output any more."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            _stopping.append(self)


@pytest.fixture
def topo():
    t = Topology()
    yield t
    t.cleanup()


@pytest.fixture
def agent_factory(tmp_path, request):
    agents = []
    request.node.hoptrace_agents = agents  # for the failure report

    def make(*args, **kw):
        a = Agent(tmp_path, list(args), **kw)
        agents.append(a)
        return a.start()

    yield make
    for a in agents:
        a.stop_later()


def attr(span, key):
    return span["attributes"].get(key)


def by_kind(spans, kind, service=None):
    return [s for s in spans if s["kind"] == kind and
            (service is None or s["resource"]["attributes"]["service.name"] == service)]
