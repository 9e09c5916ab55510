"""Node.js runtime context (--node-inject, issue 11): hoptrace's JavaScript
agent goes into a Node process the test started, through its inspector, and
out again. What must hold besides the right parents (test_propagation_models
measures those): the process answers exactly as without it, prints nothing
more on stdout, keeps no hook, file or open inspector once the agent is gone;
a process that exits while probed leaves nothing in the kernel; a process
whose inspector is the user's is refused, in one line; `hoptrace check
--pid N` says which model serves a process.

Run with Debian's /usr/bin/python3 (pytest from python3-pytest), as every
integration suite (tests/integration/CMakeLists.txt)."""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import bpf_util
from conftest import PYTHON, SERVICES, by_kind, hoptrace_bin
from propagation_util import TestCgroup, py_service

# What Node itself prints on stderr when its inspector opens on SIGUSR1, a
# client attaches, and it closes again (not ours to change).
NODE_INSPECTOR_LINES = ("Debugger listening on ws://", "For help, see: https://nodejs.org",
                        "Debugger attached.", "Debugger ending on ws://")
CLIENT = r"""
import http.client, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for i in range(n):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", f"/work?id=nh-{i}")
    r = c.getresponse()
    out.append(f"{r.status} {r.read().decode()!r}")
    c.close()
print("\n".join(out))
"""


@pytest.fixture
def cg(topo):
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


def start_node(topo, cg, ns, name, host, port, downstream, tmp_path, extra=()):
    """prop_service.js with a keep-alive http.Agent, two calls per request;
    its stderr goes to a file (topo.start discards it)."""
    script = Path(f"/tmp/ht{topo.tag}") / f"{name}.js"
    script.parent.mkdir(exist_ok=True)
    if not script.exists():
        script.symlink_to(SERVICES / "prop_service.js")
    err = tmp_path / f"{name}.stderr"
    argv = ["ip", "netns", "exec", ns, "node", *extra, str(script), "--host", host, "--port",
            str(port), "--downstream", downstream, "--client", "agent", "--max-sockets", "2",
            "--fanout", "2", "--jitter-ms", "5"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(err, "w"),
                         preexec_fn=cg.preexec())
    topo.procs.append(p)
    assert p.stdout.readline().strip() == b"listening", err.read_text()
    return p, err


def fds(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def listening_ports(ns, pid):
    r = subprocess.run(["ip", "netns", "exec", ns, "ss", "-ltnpH"], capture_output=True,
                       text=True, check=True)
    return sorted(int(line.split()[3].rsplit(":", 1)[1]) for line in r.stdout.splitlines()
                  if f"pid={pid}," in line)


def node_procs_map(agent):
    """The id of the agent's own ht_node_procs map (another agent on this
    machine has one of the same name)."""
    return bpf_util.map_id(agent.proc.pid, "ht_node_procs")


def two_namespaces(topo):
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.214.1.1", a, "10.214.1.2")
    topo.link(a, "10.214.2.1", b, "10.214.2.2")
    return c, a, b


def run_client(c, n):
    r = subprocess.run(["ip", "netns", "exec", c, PYTHON, "-c", CLIENT, "10.214.1.2", "8000",
                        str(n)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_injected_process_behaves_the_same_and_is_left_clean(topo, cg, agent_factory, tmp_path):
    c, a, b = two_namespaces(topo)
    leaf, _ = py_service(topo, cg, b, "10.214.2.2", 9000, "leaf", sleep_ms=2)
    front, err = start_node(topo, cg, a, "front", "10.214.1.2", 8000, "http://10.214.2.2:9000",
                            tmp_path)
    before = run_client(c, 10)
    fds_before, ports_before = fds(front.pid), listening_ports(a, front.pid)

    agent = agent_factory("--no-redact-query", "--propagation-cgroup", str(cg.path),
                          "--pid", str(leaf.pid), "--node-inject", str(front.pid))
    assert f"node runtime: pid {front.pid}: JavaScript agent loaded" in agent.log_text()
    # The inspector is closed again, and only the script's /dev/null is new.
    deadline = time.time() + 5
    while listening_ports(a, front.pid) != ports_before and time.time() < deadline:
        time.sleep(0.05)
    assert listening_ports(a, front.pid) == ports_before
    new = {fd: t for fd, t in fds(front.pid).items() if fd not in fds_before}
    assert list(new.values()) == ["/dev/null"], new
    procs_map = node_procs_map(agent)
    assert len(bpf_util.map_entries(procs_map)) == 1

    during = run_client(c, 10)
    spans = agent.wait_spans(lambda s: len(by_kind(s, "CLIENT", "front")) >= 20, timeout=30)
    clients = by_kind(spans, "CLIENT", "front")
    servers = {s["span_id"]: s for s in by_kind(spans, "SERVER", "front")}
    assert len(clients) == 20
    for cl in clients:
        srv = servers.get(cl["parent_span_id"])
        assert srv is not None, cl
        assert srv["attributes"]["url.query"].split("&")[0] in cl["attributes"]["url.full"]
    agent.stop()
    log = agent.log_text()
    assert "node runtime (final): processes=1 refused=0 uninstalled=1" in log, log

    # Same answers, same stdout (only "listening", read above), nothing
    # left: no hook answers any more, the fd is closed, the inspector shut.
    after = run_client(c, 10)
    assert before == during == after
    deadline = time.time() + 5
    while fds(front.pid) != fds_before and time.time() < deadline:
        time.sleep(0.05)
    assert fds(front.pid) == fds_before
    assert listening_ports(a, front.pid) == ports_before
    r = subprocess.run(["ip", "netns", "exec", a, "sh", "-c", "true"])  # ns still there
    assert r.returncode == 0
    front.send_signal(signal.SIGTERM)
    out, _ = front.communicate(timeout=10)
    assert out == b"", out
    extra = [line for line in err.read_text().splitlines()
             if not line.startswith(NODE_INSPECTOR_LINES)]
    assert extra == [], err.read_text()
    assert bpf_util.show("map", procs_map) is None  # the object went with the agent


def test_exit_while_probed_leaves_nothing(topo, cg, agent_factory, tmp_path):
    c, a, b = two_namespaces(topo)
    leaf, _ = py_service(topo, cg, b, "10.214.2.2", 9000, "leaf")
    front, _ = start_node(topo, cg, a, "front", "10.214.1.2", 8000, "http://10.214.2.2:9000",
                          tmp_path)
    agent = agent_factory("--propagation-cgroup", str(cg.path), "--pid", str(leaf.pid),
                          "--node-inject", str(front.pid))
    procs_map = node_procs_map(agent)
    assert bpf_util.u32_keys(procs_map) == [front.pid], "the process is not in ht_node_procs"
    run_client(c, 2)
    front.kill()
    front.wait(timeout=10)
    deadline = time.time() + 5
    while bpf_util.map_entries(procs_map) and time.time() < deadline:
        time.sleep(0.05)
    assert bpf_util.map_entries(procs_map) == []
    agent.stop()
    log = agent.log_text()
    assert "node runtime (final): processes=0" in log, log
    assert "could not be removed" not in log


def test_refuses_a_process_whose_inspector_is_the_users(topo, cg, agent_factory, tmp_path):
    c, a, b = two_namespaces(topo)
    leaf, _ = py_service(topo, cg, b, "10.214.2.2", 9000, "leaf")
    front, _ = start_node(topo, cg, a, "front", "10.214.1.2", 8000, "http://10.214.2.2:9000",
                          tmp_path, extra=["--inspect=127.0.0.1:0"])
    agent = agent_factory("--propagation-cgroup", str(cg.path), "--pid", str(leaf.pid),
                          "--node-inject", str(front.pid))
    log = agent.log_text()
    assert f"node runtime: pid {front.pid} keeps the thread model: its inspector is the " \
           f"user's (--inspect=127.0.0.1:0)" in log, log
    assert bpf_util.map_entries(node_procs_map(agent)) == []
    assert run_client(c, 1).startswith("200 ")


def test_check_says_which_model_serves_a_process(topo, cg, tmp_path):
    c, a, b = two_namespaces(topo)
    leaf, _ = py_service(topo, cg, b, "10.214.2.2", 9000, "leaf")
    front, _ = start_node(topo, cg, a, "front", "10.214.1.2", 8000, "http://10.214.2.2:9000",
                          tmp_path)
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(front.pid), "--pid",
                        str(leaf.pid)], capture_output=True, text=True, timeout=60)
    assert f"node runtime: pid {front.pid}: --node-inject can load the JavaScript agent" \
        in r.stdout, r.stdout
    assert f"node runtime: pid {leaf.pid}: thread model (not a Node.js process (python3" \
        in r.stdout, r.stdout
