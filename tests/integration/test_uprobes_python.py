"""Python functions as probes (--probe PROGRAM:FILE.py:FUNCTION): INTERNAL
spans of named Python functions, through CPython's USDT probes.

A real service run by Debian's /usr/bin/python3 (3.11, built with SystemTap
probes): services/pylogin.py, login -> validate_payload -> check_password
(5, 10, 15 ms) -> a call of the downstream services/http_service.py. Only
processes this test starts are probed, each by a service name of its own
(OTEL_SERVICE_NAME, or the script name hoptrace derives), started before
the agent (selected by its scan) or after it (selected at its exec). A
second pylogin, not named, runs alongside: it must get no breakpoint and
keep its semaphores at 0.

What is independent of hoptrace here: where the USDT probes and their
semaphores are comes from `readelf -n` of the interpreter, and what the
process really holds there from /proc/PID/mem.
"""
import os
import re
import subprocess
import time
import types
from pathlib import Path

import pytest

import bpf_util
from conftest import PYTHON, SERVICES, attr, by_kind, hoptrace_bin
from test_runtime_go import agent_maps, perf_links, tgids_in

MS = 1_000_000
SVC = "pyfunclogin"


def probes(program):
    return [f"{program}:pylogin.py:login", f"{program}:pylogin.py:validate_payload",
            f"{program}:pylogin.py:check_password",
            f"{program}:pylogin.py:tokens"]  # a generator: named, never timed


PROBES = probes(SVC)
# The uprobe object's maps that hold a probed process's state (keys begin
# with its tgid).
PY_MAPS = ("hu_py_procs", "hu_py_names", "hu_sites", "hu_stacks")


def first_lines(path):
    """{name: co_firstlineno} of a module's top-level functions, as CPython
    compiles them (what code.line.number must say)."""
    code = compile(Path(path).read_text(), str(path), "exec")
    return {c.co_name: c.co_firstlineno for c in code.co_consts if isinstance(c, types.CodeType)}


def interpreter():
    return os.path.realpath(PYTHON)


def usdt_notes(path):
    """{name: (pc, semaphore)} of the python provider's USDT probes, by readelf."""
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True,
                         check=True).stdout
    notes = {}
    for m in re.finditer(r"Provider: python\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), "
                         r"Base: 0x[0-9a-f]+, Semaphore: (0x[0-9a-f]+)", out):
        notes[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    return notes


def file_offset(path, vaddr):
    """File offset of a virtual address of a non-PIE executable (readelf -l)."""
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            off, va, filesz = int(f[1], 16), int(f[2], 16), int(f[4], 16)
            if va <= vaddr < va + filesz:
                return vaddr - va + off
    raise AssertionError(f"{vaddr:#x} not in a loadable segment of {path}")


def read_mem(pid, addr, n):
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(addr)
        return mem.read(n)


def semaphores(pid):
    """The process's function__entry, function__return and line semaphores
    (u16): the last one turns on CPython 3.11's tracing dispatch, the only
    place it reports function entries."""
    notes = usdt_notes(interpreter())
    return tuple(int.from_bytes(read_mem(pid, notes[n][1], 2), "little")
                 for n in ("function__entry", "function__return", "line"))


def fatal_error_address(path):
    out = subprocess.run(["nm", "-D", path], capture_output=True, text=True, check=True).stdout
    [addr] = [int(l.split()[0], 16) for l in out.splitlines() if l.endswith(" T Py_FatalError")]
    return addr


def probe_bytes_intact(pid):
    """The process's code at both USDT probe sites and at Py_FatalError (where
    the line semaphore is held) is the file's: no breakpoint."""
    path = interpreter()
    notes = usdt_notes(path)
    with open(path, "rb") as f:
        for pc in (notes["function__entry"][0], notes["function__return"][0],
                   fatal_error_address(path)):
            f.seek(file_offset(path, pc))
            if read_mem(pid, pc, 1) != f.read(1):
                return False
    return True


@pytest.fixture(autouse=True)
def debian_python():
    out = subprocess.run(["readelf", "-h", interpreter()], capture_output=True, text=True,
                         check=True).stdout
    # The helpers above read addresses as linked: Debian's python3.11 is not PIE.
    assert re.search(r"Type:\s+EXEC", out), f"{interpreter()} is PIE: {out}"
    notes = usdt_notes(interpreter())
    assert "function__entry" in notes and "function__return" in notes, (
        f"{interpreter()} has no USDT python:function__* probes")


def start_pylogin(topo, ns, port, downstream_port, name, launcher=False):
    """pylogin.py, its OTEL_SERVICE_NAME name (None: none, so its service
    name is the script's, "pylogin"). launcher: started by a shell that
    has the same environment and execs python3 half a second later, as a
    start script would. p.script: the path it runs."""
    script_dir = Path(f"/tmp/ht{topo.tag}py")
    script_dir.mkdir(exist_ok=True)
    for f in ("pylogin.py", "pylogin_other.py"):
        if not (script_dir / f).exists():
            (script_dir / f).symlink_to(SERVICES / f)
    argv = [PYTHON, str(script_dir / "pylogin.py"), str(port),
            f"http://127.0.0.1:{downstream_port}"]
    if launcher:
        argv = ["/bin/sh", "-c", 'sleep 0.5; exec "$0" "$@"'] + argv
    p = topo.start(ns, argv, env={"OTEL_SERVICE_NAME": name} if name else None)
    assert p.stdout.readline().strip() == b"ready"
    p.script = str(script_dir / "pylogin.py")
    return p


def wait_python_attached(agent, pid, timeout=10):
    deadline = time.time() + timeout
    while not re.search(rf"probe: pid {pid}: \d+ Python function\(s\)", agent.log_text()):
        assert time.time() < deadline, f"no Python probes in {pid}:\n{agent.log_text()}"
        time.sleep(0.05)


def dur(span):
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def named(spans, name):
    return [s for s in spans if s["name"] == name]


def assert_login_chains(topo, ns, agent, svc, name):
    """Requests to svc (port 9090: alice, mallory) and to the unnamed one
    (9092): the spans of the named functions, exactly, nested SERVER ->
    login -> validate_payload -> check_password -> CLIENT, timed, with
    their exceptions and where each function is."""
    lines = first_lines(SERVICES / "pylogin.py")
    assert topo.curl(ns, "http://127.0.0.1:9090/login?user=alice") == "200"
    assert topo.curl(ns, "http://127.0.0.1:9090/login?user=mallory") == "403"
    assert topo.curl(ns, "http://127.0.0.1:9092/login?user=alice") == "200"
    spans = agent.wait_spans(lambda s: len(by_kind(s, "INTERNAL")) >= 6 and
                             len(by_kind(s, "SERVER", name)) >= 2 and
                             len(by_kind(s, "CLIENT", name)) >= 1 and
                             len(by_kind(s, "SERVER", "stock")) >= 1)
    time.sleep(0.5)  # anything late would show now
    spans = agent.spans()
    mine = [s for s in spans if s["resource"]["attributes"]["process.pid"] == svc.pid]
    # Only the named functions of pylogin.py: not hash_password, not the
    # other file's check_password, not the generator, nothing of the other
    # process.
    assert sorted(s["name"] for s in by_kind(spans, "INTERNAL")) == sorted(
        ["login", "validate_payload", "check_password"] * 2)
    assert all(s["resource"]["attributes"]["process.pid"] == svc.pid
               for s in by_kind(spans, "INTERNAL"))
    servers = sorted(by_kind(mine, "SERVER"), key=lambda s: s["start_time_unix_nano"])
    assert [attr(s, "http.response.status_code") for s in servers] == [200, 403]

    ok = [s for s in mine if s["trace_id"] == servers[0]["trace_id"]]
    [client] = by_kind(ok, "CLIENT")
    [login] = named(ok, "login")
    [validate] = named(ok, "validate_payload")
    [check] = named(ok, "check_password")
    # SERVER -> login -> validate_payload -> check_password -> CLIENT
    assert login["parent_span_id"] == servers[0]["span_id"]
    assert validate["parent_span_id"] == login["span_id"]
    assert check["parent_span_id"] == validate["span_id"]
    assert client["parent_span_id"] == check["span_id"]
    for s in (login, validate, check):
        assert s["kind"] == "INTERNAL"
        assert s["status"]["code"] == "UNSET"
        assert attr(s, "code.function.name") == s["name"]
        # Where CPython says the function is: the script's path as it was
        # run, and the function's first line.
        assert attr(s, "code.file.path") == svc.script
        assert attr(s, "code.line.number") == lines[s["name"]], s["name"]
        assert attr(s, "hoptrace.code.file") is None  # code.file.path says it
        assert attr(s, "thread.id") == svc.pid  # HTTPServer serves on the main thread
    # Durations: each its own sleep plus its callees (the downstream sleeps 5 ms).
    assert 5 * MS <= dur(client) < 300 * MS
    assert dur(check) >= 15 * MS + 3 * MS + dur(client)
    assert dur(check) < 500 * MS
    assert dur(validate) >= 10 * MS + dur(check)
    assert dur(login) >= 5 * MS + 2 * MS + dur(validate)
    assert dur(servers[0]) >= dur(login)
    for outer, inner in ((servers[0], login), (login, validate), (validate, check),
                         (check, client)):
        assert outer["start_time_unix_nano"] <= inner["start_time_unix_nano"]
        assert inner["end_time_unix_nano"] <= outer["end_time_unix_nano"]
    # The backend's SERVER span is the CLIENT span's child (same host).
    assert [s["parent_span_id"] for s in by_kind(spans, "SERVER", "stock")
            if s["trace_id"] == client["trace_id"]] == [client["span_id"]]

    # mallory: check_password raised PasswordRejected through validate_payload;
    # login caught it.
    failed = [s for s in mine if s["trace_id"] == servers[1]["trace_id"]]
    assert by_kind(failed, "CLIENT") == []
    [login2] = named(failed, "login")
    [validate2] = named(failed, "validate_payload")
    [check2] = named(failed, "check_password")
    assert login2["parent_span_id"] == servers[1]["span_id"]
    assert validate2["parent_span_id"] == login2["span_id"]
    assert check2["parent_span_id"] == validate2["span_id"]
    for s in (check2, validate2):
        assert s["status"]["code"] == "ERROR", s["name"]
        assert s["status"]["message"] == "exception PasswordRejected"
        assert attr(s, "error.type") == "PasswordRejected"
        [event] = s["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "PasswordRejected"
        assert event["time_unix_nano"] == s["end_time_unix_nano"]
    for s in (login2, validate2, check2):
        assert (attr(s, "code.file.path"), attr(s, "code.line.number")) == (
            svc.script, lines[s["name"]])
    assert login2["status"]["code"] == "UNSET"
    assert login2["events"] == []
    assert 18 * MS <= dur(check2) < 500 * MS
    assert dur(validate2) >= 10 * MS + dur(check2)


def test_python_request_gives_server_internal_chain_client(topo, agent_factory):
    ns = topo.ns("pyf")
    topo.service(ns, "127.0.0.1", 9091, "stock", sleep_ms=5)
    svc = start_pylogin(topo, ns, 9090, 9091, SVC)
    other = start_pylogin(topo, ns, 9092, 9091, "pyfuncother")  # not named: never probed
    assert semaphores(svc.pid) == (0, 0, 0) and semaphores(other.pid) == (0, 0, 0)
    args = []
    for p in PROBES:
        args += ["--probe", p]
    agent = agent_factory(*args, "--exe", "stock")
    wait_python_attached(agent, svc.pid)
    assert "trap on EVERY Python call" in agent.log_text()
    held = bpf_util.progs(agent.proc.pid)
    assert {"hu_py_entry", "hu_py_return"} <= set(held.values())
    # Attached: the kernel counted our uprobe in this process's semaphores,
    # and wrote its breakpoint at both probe sites; the other process has
    # neither.
    assert semaphores(svc.pid) == (1, 1, 1)
    assert not probe_bytes_intact(svc.pid)
    assert semaphores(other.pid) == (0, 0, 0)
    assert probe_bytes_intact(other.pid)

    assert_login_chains(topo, ns, agent, svc, SVC)

    agent.stop()
    m = re.search(r"probes \(final\): (.*)", agent.log_text())
    stats = dict(kv.split("=", 1) for kv in m.group(1).split())
    assert int(stats["calls"]) == 6
    assert int(stats["unmatched_returns"]) == 0
    # tokens(3) runs in both requests, its frame entered 4 times each (3
    # yields and the end): every entry counted, none timed.
    assert int(stats["py_generators"]) == 8
    assert int(stats["py_calls_seen"]) > 6  # every Python call of the process
    # Nothing of ours stays: no program, no breakpoint, semaphores back to 0.
    assert not bpf_util.left_loaded("prog", held)
    assert semaphores(svc.pid) == (0, 0, 0)
    assert probe_bytes_intact(svc.pid)
    assert topo.curl(ns, "http://127.0.0.1:9090/login?user=alice") == "200"  # unharmed


@pytest.mark.parametrize("named_by", ["OTEL_SERVICE_NAME", "script"])
def test_python_service_started_after_the_agent_is_probed_until_it_exits(topo, agent_factory,
                                                                          named_by):
    """Selected at its exec: by the service name its environment gives, or
    by the one hoptrace derives from its script (pylogin.py: "pylogin").
    Its launchers (`ip netns exec`, then a shell that execs python3 half a
    second later) have the same environment: with OTEL_SERVICE_NAME they
    are selected first, by that name, and are no CPython; python3's exec
    replaces them and is probed, once."""
    name = SVC if named_by == "OTEL_SERVICE_NAME" else "pylogin"
    ns = topo.ns("pya")
    topo.service(ns, "127.0.0.1", 9091, "stock", sleep_ms=5)
    args = []
    for p in probes(name):
        args += ["--probe", p]
    # --no-tls: the links counted below are the Python probes'; the libssl
    # probes (urllib.request imports ssl) would come and go on their own.
    agent = agent_factory(*args, "--exe", "stock", "--no-tls")
    maps = agent_maps(agent.proc.pid, PY_MAPS)
    assert set(maps) == set(PY_MAPS), maps
    links = perf_links(agent.proc.pid)

    svc = start_pylogin(topo, ns, 9090, 9091, SVC if named_by == "OTEL_SERVICE_NAME" else None,
                        launcher=True)
    other = start_pylogin(topo, ns, 9092, 9091, "pyfuncother")  # not named: never probed
    wait_python_attached(agent, svc.pid)
    assert re.search(rf"tracing pid {svc.pid} \({name}\)", agent.log_text())
    assert "not probed" not in agent.log_text()  # the launcher was young, then replaced
    assert semaphores(svc.pid) == (1, 1, 1)
    assert not probe_bytes_intact(svc.pid)
    assert semaphores(other.pid) == (0, 0, 0)
    assert probe_bytes_intact(other.pid)
    assert perf_links(agent.proc.pid) == links + 3  # entry, return, line holder
    assert svc.pid in tgids_in(maps["hu_py_procs"])

    assert_login_chains(topo, ns, agent, svc, name)
    # Attached once: not in the launcher, not again when the agent read
    # python3's exec event after /proc already showed it.
    assert len(re.findall(rf"probe: pid {svc.pid}: \d+ Python function", agent.log_text())) == 1

    # It exits while the agent runs: its links and everything the kernel
    # kept for it go.
    svc.terminate()
    svc.wait(timeout=10)
    deadline = time.time() + 10
    while perf_links(agent.proc.pid) != links or any(
            svc.pid in tgids_in(maps[m]) for m in PY_MAPS):
        assert time.time() < deadline, (
            perf_links(agent.proc.pid), links,
            {m: svc.pid in tgids_in(maps[m]) for m in PY_MAPS})
        time.sleep(0.1)
    assert semaphores(other.pid) == (0, 0, 0)
    assert probe_bytes_intact(other.pid)
    agent.stop()
    m = re.search(r"probes \(final\): (.*)", agent.log_text())
    stats = dict(kv.split("=", 1) for kv in m.group(1).split())
    assert int(stats["calls"]) == 6
    assert int(stats["unmatched_returns"]) == 0


def test_check_lists_python_probes_and_their_cost(topo):
    ns = topo.ns("pyfc")
    topo.service(ns, "127.0.0.1", 9091, "stock")
    svc = start_pylogin(topo, ns, 9090, 9091, SVC)
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(svc.pid), "--probe",
                        f"{SVC}:pylogin.py:login", "--probe", "somethingelse:app.py:login"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr  # the second names no process given
    entry_pc, entry_sema = usdt_notes(interpreter())["function__entry"]
    line = next(l for l in r.stdout.splitlines() if "pylogin.py:login" in l)
    assert f"{interpreter()}+{file_offset(interpreter(), entry_pc):#x}" in line, line
    assert f"semaphore {entry_sema:#x}" in line, line
    assert "python 3.11." in line
    assert "traps on EVERY Python call" in r.stdout
    assert "warning: somethingelse:app.py:login matched no function" in r.stdout
    assert semaphores(svc.pid) == (0, 0, 0)  # check attaches nothing


def test_a_qualname_is_refused_with_the_reason(agent_factory):
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(os.getpid()), "--probe",
                        "svc:app.py:Auth.login"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "co_name" in r.stderr + r.stdout
