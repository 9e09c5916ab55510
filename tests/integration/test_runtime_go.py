"""Go runtime context (issue 11), what it must not do: the Go service behaves
and answers exactly as without the agent, and a Go process that exits or
execs while its goroutine probes are attached leaves nothing behind -- no
uprobe link in the agent, no entry in the kernel's Go maps.
Runs under Debian's /usr/bin/python3 (python3-pytest), as the ctest entry does."""
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest

import bpf_util
from conftest import by_kind, require_propagation
from propagation_util import TestCgroup, py_service, start_in

GO_MAPS = ("ht_go_procs", "ht_go_gs", "ht_go_newproc")


@pytest.fixture
def cg(topo):
    require_propagation()
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


def perf_links(pid):
    """The agent's perf-event BPF links (uprobes, tracepoints) right now."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            text = open(f"/proc/{pid}/fdinfo/{fd}").read()
        except OSError:
            continue
        n += bool(re.search(r"^link_type:\s+perf(_event)?\s*$", text, re.M))
    return n


def agent_maps(pid, names=GO_MAPS):
    """{map name: id} of the BPF maps named `names` the agent holds open."""
    return {n: i for i, n in bpf_util.named("map", pid).items() if n in names}


def tgids_in(map_id):
    """The tgids (first 4 bytes of each key: tgid or pid) in a map."""
    out = json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)],
                                    capture_output=True, text=True, check=True).stdout)
    tgids = []
    for e in out:
        key = e.get("formatted", e)["key"]
        if isinstance(key, dict):
            tgids.append(key["tgid"] if "tgid" in key else key["pid"])
        elif isinstance(key, int):
            tgids.append(key >> 32 if key > 0xffffffff else key)
        else:
            tgids.append(int.from_bytes(bytes(int(b, 16) for b in key[:4]), "little"))
    return tgids


def go_front(topo, cg, ns, port):
    p = start_in(topo, cg, ns, [os.environ["GO_FANOUT_BIN"], "-listen", f"10.213.1.2:{port}",
                                "-downstream", "http://10.213.2.2:9000", "-fan", "2",
                                "-jitter-ms", "5"])
    assert p.stdout.readline().strip() == b"listening"
    return p


def get(topo, ns, url):
    code = ("import urllib.request,sys\n"
            f"r=urllib.request.urlopen({url!r},timeout=30)\n"
            "sys.stdout.write(str(r.status)+' '+r.read().decode())")
    return topo.python(ns, code).stdout


def wait_for(pred, what, timeout=10):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_go_exit_and_exec_leave_nothing_attached(topo, cg, agent_factory):
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.213.1.1", a, "10.213.1.2")
    topo.link(a, "10.213.2.1", b, "10.213.2.2")
    leaf, _ = py_service(topo, cg, b, "10.213.2.2", 9000, "leaf", sleep_ms=2)
    exits, execs = go_front(topo, cg, a, 8000), go_front(topo, cg, a, 8001)
    # --no-tls: the links counted below are the Go runtime model's; TLS
    # probes (Go crypto/tls in these binaries, libssl in the leaf) come on
    # rescans whose timing would race the counts (their own attach and
    # detach are test_tls_go's and test_tls's).
    agent = agent_factory("--no-redact-query", "--no-tls", "--propagation-cgroup", str(cg.path),
                          "--pid", str(leaf.pid), "--pid", str(exits.pid),
                          "--pid", str(execs.pid))
    probes = {}
    for p in (exits, execs):
        m = re.search(rf"go: following the goroutines of pid {p.pid} \((\d+) probes\)",
                      agent.log_text())
        assert m, agent.log_text()
        probes[p.pid] = int(m.group(1))
        assert probes[p.pid] >= 3  # newproc1 entry, its return(s), send

    # Behaviour: the same answers as without the agent, and the calls made
    # from goroutines are children of the request that caused them.
    for port in (8000, 8001):
        for i in range(3):
            assert get(topo, c, f"http://10.213.1.2:{port}/work?id=n{port}-{i}") == "200 ok\n"
    spans = agent.wait_spans(lambda s: len(by_kind(s, "CLIENT", "fanout")) >= 12 and
                             len(by_kind(s, "SERVER", "fanout")) >= 6, timeout=20)
    servers = {s["span_id"] for s in by_kind(spans, "SERVER", "fanout")}
    clients = by_kind(spans, "CLIENT", "fanout")
    bad = [(s["attributes"].get("url.full"), s["parent_span_id"]) for s in clients
           if s["parent_span_id"] not in servers]
    assert len(clients) == 12 and not bad, (len(clients), bad, agent.log_text()[-3000:])

    maps = agent_maps(agent.proc.pid)
    assert set(maps) == set(GO_MAPS), maps
    assert sorted(tgids_in(maps["ht_go_procs"])) == sorted([exits.pid, execs.pid])
    assert exits.pid in tgids_in(maps["ht_go_gs"])
    links = perf_links(agent.proc.pid)

    # exec while probed: the new program (sleep) is not Go; nothing of the old one stays.
    subprocess.run(["ip", "netns", "exec", c, "/usr/bin/python3", "-c",
                    "import urllib.request\n"
                    "try: urllib.request.urlopen('http://10.213.1.2:8001/exec', timeout=5)\n"
                    "except Exception: pass"], timeout=30)
    wait_for(lambda: open(f"/proc/{execs.pid}/comm").read().strip() == "sleep", "no exec")
    wait_for(lambda: perf_links(agent.proc.pid) == links - probes[execs.pid],
             f"exec: links {perf_links(agent.proc.pid)}, want {links - probes[execs.pid]}")
    # (the agent drops the links, then sweeps the maps: wait for both)
    for name, map_id in maps.items():
        wait_for(lambda: execs.pid not in tgids_in(map_id), f"exec: {name} keeps the pid")

    # exit while probed
    exits.terminate()
    exits.wait(timeout=10)
    want = links - probes[execs.pid] - probes[exits.pid]
    wait_for(lambda: perf_links(agent.proc.pid) == want,
             f"exit: links {perf_links(agent.proc.pid)}, want {want}")
    for name, map_id in maps.items():
        wait_for(lambda: exits.pid not in tgids_in(map_id), f"exit: {name} keeps the pid")
    agent.stop()
    assert re.search(r"go \(final\): processes=2 fallback=0 detached=2", agent.log_text()), \
        agent.log_text()
