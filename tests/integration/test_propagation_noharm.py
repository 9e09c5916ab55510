"""No harm: a socket in the propagation sockhash (sk_msg on its every write)
behaves as any other. A real client (services/sockhash_probe.py, in the
test's cgroup, selected, serving a request while it runs the case so that its
requests get a traceparent) against a real server (services/sink.py, which
checks every byte): FIONREAD, poll/epoll/select readiness, sendfile, splice,
half-close, pipelined writes cut every which way with a small send buffer and
non-blocking phases, one 16 MiB write; the injected requests are valid for
nginx (and for Python and Node: test_propagation.py); a second agent with its
own sk_msg program on the same cgroup is detected and reported, and neither
crashes; and nothing stays in the kernel afterwards."""
import json
import re
import subprocess
import time

import pytest

import bpf_util
from conftest import PYTHON, SERVICES, hoptrace_bin, require_propagation
from propagation_util import TestCgroup, nginx_proxy, start_in


@pytest.fixture
def cg(topo):
    require_propagation()
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


def start_sink(topo, ns):
    """services/sink.py on port 9000 of namespace ns."""
    sink = topo.start(ns, [PYTHON, str(SERVICES / "sink.py"), "--host", "0.0.0.0",
                           "--port", "9000"])
    assert sink.stdout.readline().strip() == b"listening"
    return sink


def start_pair(topo, cg):
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.214.1.1", a, "10.214.1.2")
    topo.link(a, "10.214.2.1", b, "10.214.2.2")
    start_sink(topo, b)
    probe = start_in(topo, cg, a, [PYTHON, str(SERVICES / "sockhash_probe.py"),
                                   "--host", "10.214.1.2", "--port", "8000"])
    assert probe.stdout.readline().strip() == b"listening"
    return c, a, b, probe


def run_case(topo, c, case, peer="10.214.2.2:9000"):
    r = subprocess.run(["ip", "netns", "exec", c, "curl", "-s", "-m", "120",
                        f"http://10.214.1.2:8000/run?case={case}&peer={peer}"],
                       capture_output=True, text=True)
    assert r.stdout, f"{case}: no answer ({r.stderr})"
    return json.loads(r.stdout)


def prop_stats(agent):
    m = re.findall(r"propagation \(final\): (.*)", agent.log_text())
    assert m, agent.log_text()
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in m[-1].split())}


CASES = ["http", "fionread", "fionread_keepalive", "fionread_not_http", "poll", "sendfile", "splice", "halfclose",
         "stream", "nagle", "bigwrite"]
FIONREAD_BROKEN = "this kernel answers FIONREAD with 0 on sockets in a sockmap"


@pytest.mark.parametrize("case", CASES)
def test_socket_in_sockhash_behaves(topo, cg, agent_factory, case):
    c, a, b, probe = start_pair(topo, cg)
    agent = agent_factory("--pid", str(probe.pid), "--propagation-cgroup", str(cg.path))
    t0 = time.time()
    out = run_case(topo, c, case)
    assert out["ok"], out.get("why")
    assert time.time() - t0 < 60
    agent.stop()
    st = prop_stats(agent)
    assert st["sockets"] >= 1, st  # the probe's socket was in the sockhash
    assert st["inject_failed"] == 0 and st["sockets_failed"] == 0, st
    if case not in ("fionread", "fionread_not_http", "poll"):
        assert st["injected"] >= 1, st
    if case == "fionread_not_http":
        # Out of the sockhash: swept by the agent, or already taken out by
        # the read guard when the peer acknowledged the first write.
        assert st["not_http"] == 1 and st["released"] + st["disarmed"] >= 1, st
    if case in ("stream", "nagle"):
        assert st["injected"] == out["injected"] >= 1
    if case == "nagle" and FIONREAD_BROKEN not in agent.log_text():
        assert st["injected"] == 40, st
    if case == "fionread_keepalive":
        assert st["injected"] == 4, st
        if FIONREAD_BROKEN in agent.log_text():  # the read guard did its work
            assert st["disarmed"] >= 4 and st["rearmed"] >= 3, st


def test_injected_request_is_valid_for_nginx(topo, cg, agent_factory):
    c, a, b, probe = start_pair(topo, cg)
    # nginx (not selected: it only proxies) in front of the sink.
    n = topo.ns("n")
    topo.link(a, "10.214.3.1", n, "10.214.3.2")
    topo.link(n, "10.214.4.1", b, "10.214.4.2")
    nginx_proxy(topo, cg, n, "10.214.3.2", 8080, "http://10.214.4.2:9000")
    agent = agent_factory("--pid", str(probe.pid), "--propagation-cgroup", str(cg.path))
    out = run_case(topo, c, "http", peer="10.214.3.2:8080")
    assert out["ok"], out.get("why")
    [tp] = out["traceparents"]  # nginx passed exactly one on
    agent.stop()
    assert prop_stats(agent)["injected"] == 1


def test_second_agent_with_its_own_sk_msg_is_detected(topo, cg, agent_factory):
    c, a, b, probe = start_pair(topo, cg)
    first = agent_factory("--pid", str(probe.pid), "--propagation-cgroup", str(cg.path),
                          name="first")
    second = agent_factory("--pid", str(probe.pid), "--propagation-cgroup", str(cg.path),
                           name="second")
    assert "already runs sockops program" in second.log_text()
    out = run_case(topo, c, "http")
    assert out["ok"], out.get("why")
    assert len(out["traceparents"]) == 1  # one agent injected, not two
    second.stop()
    first.stop()
    s1, s2 = prop_stats(first), prop_stats(second)
    assert s1["injected"] + s2["injected"] == 1, (s1, s2)
    # The socket went to the first sockhash; the second agent's sockops
    # found it taken and said so.
    assert s1["sockets"] >= 1 and s2["sockets_busy"] >= 1, (s1, s2)
    assert "already had another program's sk_msg" in second.log_text()
    assert first.proc.returncode == 0 and second.proc.returncode == 0


def test_nothing_stays_in_the_kernel(topo, cg, agent_factory):
    c, a, b, probe = start_pair(topo, cg)
    agent = agent_factory("--pid", str(probe.pid), "--propagation-cgroup", str(cg.path))
    # The agent's own: another agent on this machine has programs of the same names.
    ours = {i for i, n in bpf_util.progs(agent.proc.pid).items()
            if n in ("ht_sockops", "ht_sk_msg")}
    assert len(ours) == 2
    held = bpf_util.held_ids(agent.proc.pid)  # every object it holds, those two included
    assert run_case(topo, c, "http")["ok"]
    assert agent.stop() == 0
    # Ids are not handed out again soon: one still loaded after 5 s in all
    # is one still there.
    deadline = time.time() + 5
    left = {k: bpf_util.left_loaded(k, ids, timeout=max(0.0, deadline - time.time()))
            for k, ids in held.items()}
    assert not any(left.values()), left
    r = subprocess.run(["bpftool", "cgroup", "show", str(cg.path)], capture_output=True, text=True)
    assert "sock_ops" not in r.stdout, r.stdout
    # The probe's sockets still work without the sockhash.
    assert run_case(topo, c, "stream")["ok"]


def nginx_in_front_of_sink(topo, cg):
    """curl (ns c) -> nginx (ns a, in the cgroup: its upstream connections
    enter the sockhash) -> sink (ns b)."""
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.214.5.1", a, "10.214.5.2")
    topo.link(a, "10.214.6.1", b, "10.214.6.2")
    start_sink(topo, b)
    nginx, _ = nginx_proxy(topo, cg, a, "10.214.5.2", 8080, "http://10.214.6.2:9000")
    return c, nginx


def fetch_blobs(topo, ns, url, n, count):
    """count GETs of an n-byte blob on one curl: (status codes, body sizes)."""
    urls = []
    for _ in range(count):
        urls += ["-o", "/dev/null", f"{url}/blob?n={n}"]
    r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-m", "8",
                        "-w", "%{http_code} %{size_download}\\n"] + urls,
                       capture_output=True, text=True, timeout=8 * count + 20)
    lines = [line.split() for line in r.stdout.splitlines()]
    assert lines and all(len(line) == 2 for line in lines), (r.stdout, r.stderr)
    return [line[0] for line in lines], [int(line[1]) for line in lines]


@pytest.mark.parametrize("guard", ["auto", "off", "detect"])
def test_nginx_proxying_large_responses(topo, cg, agent_factory, guard):
    # nginx sizes its reads of upstream responses with FIONREAD (edge-
    # triggered epoll: a 0 says "nothing more to read" and it waits for an
    # event that never comes). Its upstream connections are in the sockhash.
    c, nginx = nginx_in_front_of_sink(topo, cg)
    agent = agent_factory("--pid", str(nginx.pid), "--propagation-cgroup", str(cg.path),
                          *(() if guard == "auto" else ("--fionread-guard", guard)))
    broken = FIONREAD_BROKEN in agent.log_text()
    t0 = time.time()
    codes, sizes = fetch_blobs(topo, c, "http://10.214.5.2:8080", 1_000_000, 5)
    took = time.time() - t0
    agent.stop()
    st = prop_stats(agent)
    if guard == "off" and broken:
        # What the guard prevents, shown on this kernel: without it nginx
        # stalls on responses larger than its buffers.
        assert sizes != [1_000_000] * 5, (codes, sizes, took)
        return
    assert codes == ["200"] * 5 and sizes == [1_000_000] * 5, (codes, sizes)
    assert took < 10, took
    assert st["injected"] == 5, st  # every upstream request carried a traceparent
    if guard == "detect" and broken:
        # nginx asked FIONREAD: marked, and its sockets guarded from then on.
        assert st["fionread_processes"] >= 1, st


def test_check_says_what_the_agent_finds(topo, cg, agent_factory):
    # `hoptrace check` and the agent's start-up probe agree on the kernel.
    r = subprocess.run([hoptrace_bin(), "check"], capture_output=True, text=True, timeout=60)
    prog = [l for l in r.stdout.splitlines() if "context propagation programs" in l]
    fion = [l for l in r.stdout.splitlines() if "FIONREAD on sockhash sockets" in l]
    assert prog and prog[0].startswith("ok"), r.stdout
    assert len(fion) == 1, r.stdout
    c, a, b, probe = start_pair(topo, cg)
    agent = agent_factory("--pid", str(probe.pid), "--propagation-cgroup", str(cg.path))
    if FIONREAD_BROKEN in agent.log_text():
        assert fion[0].startswith("MISSING") and "read guard will be on" in fion[0], fion
        assert "read guard on" in agent.log_text()
    else:
        assert fion[0].startswith("ok") and "exact" in fion[0], fion


@pytest.mark.parametrize("case", ["nagle", "fionread"])
def test_read_guard_detect_mode(topo, cg, agent_factory, case):
    # --fionread-guard detect: a process that never asks FIONREAD keeps its
    # sockets in the sockhash (every back-to-back keep-alive request is
    # injected); one that does is answered late once, woken, and guarded.
    c, a, b, probe = start_pair(topo, cg)
    agent = agent_factory("--pid", str(probe.pid), "--propagation-cgroup", str(cg.path),
                          "--fionread-guard", "detect")
    assert 'read guard "detect"' in agent.log_text()
    out = run_case(topo, c, case)
    assert out["ok"], out.get("why")
    agent.stop()
    st = prop_stats(agent)
    if case == "nagle":
        assert out["injected"] == st["injected"] == 40, (out, st)
        assert st["fionread_processes"] == 0 and st["disarmed"] == 0, st
    else:
        assert st["fionread_processes"] == 1, st
        if FIONREAD_BROKEN in agent.log_text():
            assert st["fionread_wakeups"] >= 1, st
