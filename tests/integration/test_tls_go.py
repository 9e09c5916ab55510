"""HTTPS of Go programs through uprobes on crypto/tls.(*Conn).Write/Read
(entry, and the return instructions found by disassembly). The chain
curl -> Go front (net/http TLS server; its handler calls the leaf through a
net/http TLS client) -> Go leaf (net/http TLS server), each in its own
network namespace, none of them instrumented; certificates made here with
the `openssl` CLI. tests/go/tlsfront is built with the pinned toolchain.
Runs under Debian's /usr/bin/python3 (python3-pytest), as the ctest entry does."""
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import bpf_util
from conftest import attr, by_kind, hoptrace_bin, require_propagation
from propagation_util import TestCgroup, start_in
from test_runtime_go import agent_maps, perf_links, wait_for
from test_tls import make_cert, tls_stats

MS = 1_000_000
BIG = 1 << 20
GOTLS_MAPS = ("ht_gotls_procs", "ht_gotls_calls")
GOTLS_PROGS = {"ht_gotls_write", "ht_gotls_read", "ht_gotls_write_ret", "ht_gotls_read_ret"}


def tlsfront():
    return os.environ.get("GO_TLSFRONT_BIN", "build/tests/go/tlsfront")


def big_body(n):
    """What /big?n=N answers (tests/go/tlsfront/main.go)."""
    return bytes((i * 7 + 3) % 251 for i in range(n))


@pytest.fixture
def cg(topo):
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


class GoChain:
    """c (curl) -> a (front, 10.212.1.2:8443) -> b (leaf, 10.212.2.2:9443)."""

    def __init__(self, topo, cg):
        self.topo, self.cg = topo, cg
        self.dir = Path(f"/tmp/ht{topo.tag}")
        self.dir.mkdir(exist_ok=True)
        self.c, self.a, self.b = (topo.ns(n) for n in ("c", "a", "b"))
        topo.link(self.c, "10.212.1.1", self.a, "10.212.1.2")
        topo.link(self.a, "10.212.2.1", self.b, "10.212.2.2")
        self.cert, self.key = make_cert(self.dir, ["10.212.1.2", "10.212.2.2"])

    def start(self, ns, name, listen, downstream="", exe=None):
        argv = [exe or tlsfront(), "-listen", listen, "-cert", str(self.cert), "-key",
                str(self.key)]
        if downstream:
            argv += ["-downstream", downstream, "-cafile", str(self.cert)]
        p = start_in(self.topo, self.cg, ns, argv, env={"OTEL_SERVICE_NAME": name})
        assert p.stdout.readline().strip() == b"listening", f"{name} did not start"
        return p

    def leaf(self, exe=None):
        return self.start(self.b, "goleaf", "10.212.2.2:9443", exe=exe)

    def front(self):
        return self.start(self.a, "gofront", "10.212.1.2:8443",
                          downstream="https://10.212.2.2:9443")

    def curl(self, ns, urls, outs):
        """One curl, so one TLS connection kept alive for every URL: the
        status and the number of new connections of each transfer."""
        argv = ["ip", "netns", "exec", ns, "curl", "-s", "--http1.1", "--cacert", str(self.cert),
                "-m", "30", "-w", "%{http_code} %{num_connects}\n"]
        for url, out in zip(urls, outs):
            argv += ["-o", str(out), url]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return [tuple(map(int, line.split())) for line in r.stdout.splitlines()]


def wait_probed(agent, pid):
    wait_for(lambda: re.search(rf"tls: probing .* \(Go crypto/tls\) in pid {pid}:",
                               agent.log_text()), f"pid {pid} not probed:\n{agent.log_text()}")


def pid_of(span):
    return span["resource"]["attributes"]["process.pid"]


def dur(span):
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def test_go_https_chain_exact_spans(topo, cg, agent_factory, tmp_path):
    """Kernel-side contexts on (the Go goroutine model decides the parent of
    a request written through tls.Conn.Write, as for a plaintext write):
    three requests and a 1 MiB response on one kept-alive TLS connection to
    the front; each /work/N makes one call to the leaf over the front's one
    kept-alive TLS connection. Exactly 10 spans: the ciphertext under them
    makes none."""
    require_propagation()
    ch = GoChain(topo, cg)
    leaf = ch.leaf()
    front = ch.front()
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path))
    for p in (front, leaf):
        wait_probed(agent, p.pid)

    # /big between the others: the responses after it are parsed only if
    # its 1 MiB of plaintext was counted exactly.
    outs = [tmp_path / f"out{i}" for i in range(4)]
    urls = ["https://10.212.1.2:8443/work/1", f"https://10.212.1.2:8443/big?n={BIG}",
            "https://10.212.1.2:8443/work/2", "https://10.212.1.2:8443/work/3"]
    assert ch.curl(ch.c, urls, outs) == [(200, 1), (200, 0), (200, 0), (200, 0)]
    for i, out in ((1, outs[0]), (2, outs[2]), (3, outs[3])):
        assert out.read_text() == f"work {i}: leaf {i}\n"
    got = outs[1].read_bytes()
    assert len(got) == BIG and hashlib.sha256(got).digest() == hashlib.sha256(
        big_body(BIG)).digest()

    spans = agent.wait_spans(lambda s: len(s) >= 10)
    time.sleep(1.0)  # nothing more may come
    spans = agent.spans()
    assert len(spans) == 10, [(s["kind"], pid_of(s), attr(s, "url.path")) for s in spans]

    fsrv = {attr(s, "url.path"): s for s in by_kind(spans, "SERVER") if pid_of(s) == front.pid}
    fcli = {attr(s, "url.full").split("9443")[-1]: s for s in by_kind(spans, "CLIENT")
            if pid_of(s) == front.pid}
    lsrv = {attr(s, "url.path"): s for s in by_kind(spans, "SERVER") if pid_of(s) == leaf.pid}
    assert sorted(fsrv) == ["/big", "/work/1", "/work/2", "/work/3"], fsrv.keys()
    assert sorted(fcli) == ["/leaf/1", "/leaf/2", "/leaf/3"], fcli.keys()
    assert sorted(lsrv) == ["/leaf/1", "/leaf/2", "/leaf/3"], lsrv.keys()

    for s in list(fsrv.values()) + list(lsrv.values()) + list(fcli.values()):
        assert s["name"] == "GET"
        assert attr(s, "http.request.method") == "GET"
        # a SERVER span's scheme; a CLIENT span's is in url.full
        assert attr(s, "url.scheme" if s["kind"] == "SERVER" else "url.full").startswith("https")
        assert attr(s, "http.response.status_code") == 200
        assert attr(s, "network.protocol.version") == "1.1"
        assert s["status"]["code"] == "UNSET"
    for s in fsrv.values():
        assert attr(s, "server.port") == 8443
        assert attr(s, "client.address") == "10.212.1.1"
        assert s["resource"]["attributes"]["service.name"] == "gofront"
    for s in lsrv.values():
        assert attr(s, "server.port") == 9443
        assert attr(s, "client.address") == "10.212.2.1"
        assert s["resource"]["attributes"]["service.name"] == "goleaf"
    # Keep-alive: one connection from curl, one from the front's pool.
    assert len({attr(s, "client.port") for s in fsrv.values()}) == 1
    assert len({attr(s, "client.port") for s in lsrv.values()}) == 1
    assert attr(fsrv["/big"], "http.response.body.size") == BIG

    for i in (1, 2, 3):
        srv, cli, leaf_srv = fsrv[f"/work/{i}"], fcli[f"/leaf/{i}"], lsrv[f"/leaf/{i}"]
        assert attr(cli, "url.full") == f"https://10.212.2.2:9443/leaf/{i}"
        assert attr(cli, "network.peer.address") == "10.212.2.2"
        assert attr(cli, "network.peer.port") == 9443
        # The chain: curl's request roots a trace; the call the handler
        # made is its child; the leaf's span is the call's child.
        assert srv["parent_span_id"] == ""
        assert cli["parent_span_id"] == srv["span_id"], (i, cli["parent_span_id"],
                                                          srv["span_id"])
        assert leaf_srv["parent_span_id"] == cli["span_id"]
        assert srv["trace_id"] == cli["trace_id"] == leaf_srv["trace_id"]
        for parent, child in ((srv, cli), (cli, leaf_srv)):
            assert parent["start_time_unix_nano"] <= child["start_time_unix_nano"]
            assert child["end_time_unix_nano"] <= parent["end_time_unix_nano"]
        assert dur(srv) < 2000 * MS
    assert len({s["trace_id"] for s in fsrv.values()}) == 4

    agent.stop()
    t = tls_stats(agent)
    assert t["attached"] == 2 and t["attach_failed"] == 0, t
    assert t["go_no_fd"] == 0, t
    # at least: front 4 requests read + 4 responses + 3 calls x (write, read),
    # leaf 3 x (read, write)
    assert t["go_calls"] >= 20, t
    # Every data event the kernel sent was Go TLS plaintext: the sockets'
    # ciphertext (handshakes included) sent none.
    assert t["data_events"] == t["go_calls"], t


def test_go_https_read_only(topo, cg, agent_factory, tmp_path):
    """Without kernel-side contexts (no propagation): the same spans and
    attributes; the leaf's span is the child of the front's call (one host,
    one connection)."""
    ch = GoChain(topo, cg)
    leaf = ch.leaf()
    front = ch.front()
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid))
    for p in (front, leaf):
        wait_probed(agent, p.pid)
    out = tmp_path / "out"
    assert ch.curl(ch.c, ["https://10.212.1.2:8443/work/7"], [out]) == [(200, 1)]
    assert out.read_text() == "work 7: leaf 7\n"
    spans = agent.wait_spans(lambda s: len(s) >= 3)
    time.sleep(1.0)
    spans = agent.spans()
    assert len(spans) == 3, [(s["kind"], pid_of(s), attr(s, "url.path")) for s in spans]
    [srv] = [s for s in by_kind(spans, "SERVER") if pid_of(s) == front.pid]
    [cli] = by_kind(spans, "CLIENT")
    [lsrv] = [s for s in by_kind(spans, "SERVER") if pid_of(s) == leaf.pid]
    assert pid_of(cli) == front.pid
    assert attr(srv, "url.path") == "/work/7" and attr(lsrv, "url.path") == "/leaf/7"
    assert attr(cli, "url.full") == "https://10.212.2.2:9443/leaf/7"
    assert attr(srv, "url.scheme") == attr(lsrv, "url.scheme") == "https"
    assert all(attr(s, "http.response.status_code") == 200 for s in spans)
    assert lsrv["parent_span_id"] == cli["span_id"]


def test_go_started_later_is_probed_and_exit_leaves_nothing(topo, cg, agent_factory):
    """A Go server started after the agent (selected by a name only it has:
    a copy of the binary named after this test) is probed; its HTTPS
    exchange becomes a span; when it exits, its probes and its map entry go;
    after the agent exits, no program of ours stays."""
    ch = GoChain(topo, cg)
    name = f"gotls{topo.tag}"
    exe = ch.dir / name
    shutil.copy2(tlsfront(), exe)
    agent = agent_factory("--exe", name)
    links_before = perf_links(agent.proc.pid)
    leaf = ch.leaf(exe=str(exe))
    wait_probed(agent, leaf.pid)
    m = re.search(rf"in pid {leaf.pid}: .*\((\d+) probes\)", agent.log_text())
    probes = int(m.group(1))
    assert probes >= 4  # Write and Read: entry and at least one return each
    wait_for(lambda: perf_links(agent.proc.pid) == links_before + probes,
             f"links {perf_links(agent.proc.pid)}, want {links_before + probes}")
    maps = agent_maps(agent.proc.pid, GOTLS_MAPS)
    assert set(maps) == set(GOTLS_MAPS), maps
    assert len(bpf_util.map_entries(maps["ht_gotls_procs"])) == 1

    r = subprocess.run(["ip", "netns", "exec", ch.a, "curl", "-s", "--http1.1", "--cacert",
                        str(ch.cert), "-o", "-", "-w", " %{http_code}", "https://10.212.2.2:9443/leaf/9"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "leaf 9\n 200"
    spans = agent.wait_spans(lambda s: len(s) >= 1)
    [srv] = spans
    assert srv["kind"] == "SERVER" and pid_of(srv) == leaf.pid
    assert attr(srv, "url.scheme") == "https" and attr(srv, "url.path") == "/leaf/9"

    leaf.terminate()
    leaf.wait(timeout=10)
    wait_for(lambda: perf_links(agent.proc.pid) == links_before,
             f"exit: links {perf_links(agent.proc.pid)}, want {links_before}")
    wait_for(lambda: bpf_util.map_entries(maps["ht_gotls_procs"]) == [],
             "exit: ht_gotls_procs keeps it")
    # A Read in flight when it died (the server's idle keep-alive read) is swept too.
    wait_for(lambda: bpf_util.map_entries(maps["ht_gotls_calls"]) == [],
             "exit: ht_gotls_calls keeps it")
    held = bpf_util.prog_ids(agent.proc.pid)
    assert GOTLS_PROGS <= {bpf_util.prog_name(i) for i in held}
    agent.stop()
    t = tls_stats(agent)
    assert t["attached"] == t["detached"] == 1, t
    assert not bpf_util.left_loaded("prog", held)


def test_check_names_go_crypto_tls(topo, cg, tmp_path):
    """hoptrace check --pid N names a Go program's crypto/tls and whether it
    can be probed; a stripped copy (no .symtab) is refused, saying why."""
    ch = GoChain(topo, cg)
    leaf = ch.leaf()
    stripped = ch.dir / "gostripped"
    subprocess.run(["objcopy", "--strip-all", tlsfront(), str(stripped)], check=True)
    assert "symtab" not in subprocess.run(["readelf", "-S", str(stripped)], capture_output=True,
                                          text=True).stdout
    other = ch.start(ch.a, "gostripped", "10.212.1.2:8443", exe=str(stripped))
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(leaf.pid), "--pid",
                        str(other.pid)], capture_output=True, text=True, timeout=120)
    lines = r.stdout.splitlines()
    mine = [l for l in lines if f"TLS in pid {leaf.pid} " in l]
    assert any(l.startswith("ok") and "(Go crypto/tls): can be probed: crypto/tls.(*Conn).Write, "
               "crypto/tls.(*Conn).Read" in l for l in mine), r.stdout
    theirs = [l for l in lines if f"TLS in pid {other.pid} " in l]
    assert any(l.startswith("info") and "(Go crypto/tls): cannot be probed: stripped Go binary"
               in l for l in theirs), r.stdout


def test_go_https_http2_by_alpn(topo, cg, agent_factory):
    """curl offers h2 by ALPN and net/http's TLS server takes it: the
    plaintext stream reaches the HTTP/2 parser the same way (two streams on
    one connection, two SERVER spans, protocol version 2)."""
    ch = GoChain(topo, cg)
    leaf = ch.leaf()
    agent = agent_factory("--pid", str(leaf.pid))
    wait_probed(agent, leaf.pid)
    r = subprocess.run(["ip", "netns", "exec", ch.a, "curl", "-s", "--http2", "--cacert",
                        str(ch.cert), "-w", "%{http_version} %{http_code}\n",
                        "https://10.212.2.2:9443/leaf/21", "https://10.212.2.2:9443/leaf/22"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout == "leaf 21\n2 200\nleaf 22\n2 200\n", r.stdout
    spans = agent.wait_spans(lambda s: len(s) >= 2)
    time.sleep(1.0)
    spans = sorted(agent.spans(), key=lambda s: s["start_time_unix_nano"])
    assert [(s["kind"], attr(s, "url.path")) for s in spans] == [("SERVER", "/leaf/21"),
                                                                 ("SERVER", "/leaf/22")]
    for s in spans:
        assert attr(s, "url.scheme") == "https"
        assert attr(s, "network.protocol.version") == "2"
        assert attr(s, "http.response.status_code") == 200
    assert len({attr(s, "client.port") for s in spans}) == 1
