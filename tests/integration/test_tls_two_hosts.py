"""Trace context across TLS between two hosts, in a TCP option (issue 12,
item 4; bpf/tcp_ctx_option.h). Two network namespaces stand for two hosts
(one veth pair); each has its own hoptrace agent, which selects only its
own test process (by pid) and propagates only in its own cgroup. A Python
`ssl` client in A calls a Python `ssl` server in B over HTTPS; the headers
are ciphertext, so the only way the context crosses is below TLS.

Every test also records the segments B's interface receives (AF_PACKET,
services/tcpopt_sniff.py): the option is checked on the wire, not only in
the spans."""
import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PYTHON, SERVICES, attr, by_kind, require_propagation
from propagation_util import TestCgroup
from test_tls import make_cert

A_IP, B_IP, PORT = "10.213.1.1", "10.213.1.2", 9443
PATHS = ["/status/200", "/big/1048576", "/status/404"]


@pytest.fixture
def cgs(topo):
    require_propagation()
    a, b = TestCgroup(), TestCgroup()
    yield a, b
    a.remove(topo.procs)
    b.remove(topo.procs)


class TwoHosts:
    def __init__(self, topo, cg_a, cg_b):
        self.topo = topo
        self.dir = Path(f"/tmp/ht{topo.tag}")
        self.dir.mkdir(exist_ok=True)
        self.a, self.b = topo.ns("a"), topo.ns("b")
        self.if_a, self.if_b = topo.link(self.a, A_IP, self.b, B_IP)
        self.cert, self.key = make_cert(self.dir, [B_IP])
        self.cg_a, self.cg_b = cg_a, cg_b

    def server(self):
        script = self.dir / "tlsleaf.py"
        script.symlink_to(SERVICES / "http_service.py")
        p = self.topo.start(self.b, [PYTHON, str(script), "--host", B_IP, "--port", str(PORT),
                                     "--cert", str(self.cert), "--key", str(self.key)],
                            preexec_fn=self.cg_b.preexec())
        assert p.stdout.readline().strip() == b"listening", "TLS server did not start"
        return p

    def client(self, name, paths=PATHS):
        """A client process in A's cgroup, waiting for go()."""
        script = self.dir / f"{name}.py"
        script.symlink_to(SERVICES / "tls_client.py")
        p = self.topo.start(self.a, [PYTHON, str(script), "--host", B_IP, "--port", str(PORT),
                                     "--cafile", str(self.cert), *paths],
                            preexec_fn=self.cg_a.preexec(), stdin=subprocess.PIPE)
        assert p.stdout.readline().strip() == b"ready", f"{name} did not start"
        return p

    def sniffer(self):
        out = self.dir / "segments.jsonl"
        p = self.topo.start(self.b, [PYTHON, str(SERVICES / "tcpopt_sniff.py"), "--iface",
                                     self.if_b, "--port", str(PORT), "--out", str(out)])
        assert p.stdout.readline().strip() == b"ready", "sniffer did not start"
        return p, out


def go(client, timeout=30):
    """Lets a waiting client run; returns (its local port, [(status, len, sha)])."""
    client.stdin.write(b"go\n")
    client.stdin.flush()
    out, _ = client.communicate(timeout=timeout)
    lines = out.decode().split("\n")
    assert lines[0].startswith("port "), out
    results = [tuple(l.split()) for l in lines[1:] if l.strip()]
    return int(lines[0].split()[1]), results


def segments(sniffer, out):
    time.sleep(0.3)  # the last segments reach the sniffer
    sniffer.terminate()
    sniffer.wait(timeout=10)
    recs = [json.loads(l) for l in out.read_text().splitlines() if l.strip()]
    assert recs and recs[-1] == {"drops": 0}, recs[-1:]  # every segment seen
    return recs[:-1]


def opt_counts(agent):
    """The agent's final "tcp option" counters."""
    m = re.findall(r"tcp option \(final\): (.*)", agent.log_text())
    assert m, agent.log_text()
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in m[-1].split())}


def pattern_sha(n):
    block = bytes(range(256)) * 256
    return hashlib.sha256((block * (n // len(block) + 1))[:n]).hexdigest()


def check_results(results):
    assert [r[0] for r in results] == ["200", "200", "404"], results
    assert results[1][1:] == (str(1 << 20), pattern_sha(1 << 20)), "body not byte-exact"


def client_requests(segs, port):
    """Segments from the client's port that carry data (its TLS records)."""
    return [s for s in segs if s["sport"] == port and s["len"] > 0]


def test_https_call_between_two_traced_hosts_is_one_trace(topo, cgs, agent_factory):
    """Three requests on one kept-alive TLS connection: each SERVER span in B
    is the child of exactly the CLIENT span in A that sent it (the option
    carried trace id and span id); a second client in A's cgroup that A's
    agent does not select sends no option at all."""
    h = TwoHosts(topo, *cgs)
    server = h.server()
    client = h.client("tlsclient")
    other = h.client("otherclient", ["/status/200"])
    sniffer, seg_log = h.sniffer()
    agent_a = agent_factory("--pid", str(client.pid), "--propagation-cgroup", str(h.cg_a.path),
                            name="a")
    agent_b = agent_factory("--pid", str(server.pid), "--propagation-cgroup", str(h.cg_b.path),
                            name="b")
    port, results = go(client)
    check_results(results)
    other_port, other_results = go(other)
    assert other_results == [("200", "3", other_results[0][2])]

    clients = agent_a.wait_spans(lambda s: len(by_kind(s, "CLIENT")) >= 3)
    servers = agent_b.wait_spans(lambda s: len(by_kind(s, "SERVER")) >= 4)
    clients = sorted(by_kind(clients, "CLIENT"), key=lambda s: s["start_time_unix_nano"])
    all_servers = by_kind(servers, "SERVER")
    servers = sorted((s for s in all_servers if attr(s, "client.port") == port),
                     key=lambda s: s["start_time_unix_nano"])
    agent_a.stop()
    agent_b.stop()
    a, b = opt_counts(agent_a), opt_counts(agent_b)
    assert len(clients) == 3 and len(servers) == 3, (clients, all_servers)
    # The unselected client's request: served (B traces its server), no parent.
    [unsel] = [s for s in all_servers if attr(s, "client.port") == other_port]
    assert unsel["parent_span_id"] == ""
    for cli, srv, path in zip(clients, servers, PATHS):
        assert attr(cli, "url.full") == f"https://hoptrace.test{path}"  # Host: names it
        assert attr(cli, "network.peer.address") == B_IP
        assert attr(srv, "url.path") == path and attr(srv, "url.scheme") == "https"
        assert cli["parent_span_id"] == ""  # the client starts the trace
        assert srv["trace_id"] == cli["trace_id"], (a, b)
        assert srv["parent_span_id"] == cli["span_id"]
    assert len({c["trace_id"] for c in clients}) == 3  # one trace per request

    # On the wire: one option per request, on the segment that starts its
    # TLS record (application data, 0x17), naming exactly that CLIENT span.
    segs = segments(sniffer, seg_log)
    with_opt = [s for s in segs if s["ctx"]]
    assert [(s["ctx"]["trace_id"], s["ctx"]["parent_id"]) for s in with_opt] == \
        [(c["trace_id"], c["span_id"]) for c in clients], client_requests(segs, port)
    for s in with_opt:
        assert s["sport"] == port and s["first"] == "17" and s["ctx"]["len"] == 28
        assert s["ctx"]["sampled"]
    assert client_requests(segs, port), "the sniffer saw no request segment"
    assert client_requests(segs, other_port), "the sniffer saw no segment of the other client"
    assert [s for s in segs if s["sport"] == other_port and 253 in s["kinds"]] == []
    assert [s for s in segs if s["sport"] == PORT and 253 in s["kinds"]] == []  # responses

    assert (a["staged"], a["sent"], a["roots"], a["no_room"], a["unsent"]) == (3, 3, 3, 0, 0), a
    # absent: the unselected client's request, which came without one.
    assert (b["received"], b["used"], b["absent"], b["server_spans"]) == (3, 3, 1, 3), b


def test_untraced_receiver_ignores_the_option_byte_exact(topo, cgs, agent_factory):
    """No agent in B: its TCP gets the option and ignores it (RFC 9293
    3.1); the responses are byte-exact and A's CLIENT spans complete."""
    h = TwoHosts(topo, *cgs)
    h.server()
    client = h.client("tlsclient")
    sniffer, seg_log = h.sniffer()
    agent_a = agent_factory("--pid", str(client.pid), "--propagation-cgroup", str(h.cg_a.path),
                            name="a")
    port, results = go(client)
    check_results(results)
    spans = agent_a.wait_spans(lambda s: len(by_kind(s, "CLIENT")) >= 3)
    assert [attr(s, "http.response.status_code") for s in
            sorted(by_kind(spans, "CLIENT"), key=lambda s: s["start_time_unix_nano"])] == \
        [200, 200, 404]
    segs = segments(sniffer, seg_log)
    assert len([s for s in segs if s["ctx"]]) == 3  # it did reach B's TCP
    agent_a.stop()
    assert opt_counts(agent_a)["sent"] == 3


def strip_option(topo, ns):
    """A middlebox rule in the path: A's egress strips option 253."""
    topo.sh(ns, "iptables -t mangle -A POSTROUTING -p tcp -j TCPOPTSTRIP --strip-options 253")


def test_option_stripped_between_hosts_falls_back_counted(topo, cgs, agent_factory):
    """A middlebox strips the option: B's SERVER spans start traces of their
    own (no same-host caller to link to), the miss is counted, and the
    requests are unharmed."""
    h = TwoHosts(topo, *cgs)
    server = h.server()
    client = h.client("tlsclient")
    strip_option(topo, h.a)
    sniffer, seg_log = h.sniffer()
    agent_a = agent_factory("--pid", str(client.pid), "--propagation-cgroup", str(h.cg_a.path),
                            name="a")
    agent_b = agent_factory("--pid", str(server.pid), "--propagation-cgroup", str(h.cg_b.path),
                            name="b")
    port, results = go(client)
    check_results(results)
    clients = by_kind(agent_a.wait_spans(lambda s: len(by_kind(s, "CLIENT")) >= 3), "CLIENT")
    servers = by_kind(agent_b.wait_spans(lambda s: len(by_kind(s, "SERVER")) >= 3), "SERVER")
    assert len(servers) == 3
    assert {s["parent_span_id"] for s in servers} == {""}
    assert not {s["trace_id"] for s in servers} & {c["trace_id"] for c in clients}
    segs = segments(sniffer, seg_log)
    assert [s for s in segs if 253 in s["kinds"]] == []
    agent_a.stop()
    agent_b.stop()
    a, b = opt_counts(agent_a), opt_counts(agent_b)
    assert a["sent"] == 3  # written by sockops, taken out by the middlebox
    assert (b["received"], b["used"], b["absent"]) == (0, 0, 3), b


def test_option_stripped_on_one_host_falls_back_to_the_local_link(topo, cgs, agent_factory):
    """Client and server traced by one agent (one host), the option stripped
    in between: the SERVER span still has the CLIENT span as parent, by the
    connection's tuple, and the kernel counts the option as absent."""
    cg_a, _ = cgs
    h = TwoHosts(topo, cg_a, cg_a)
    server = h.server()
    client = h.client("tlsclient")
    strip_option(topo, h.a)
    agent = agent_factory("--pid", str(client.pid), "--pid", str(server.pid),
                          "--propagation-cgroup", str(cg_a.path))
    port, results = go(client)
    check_results(results)
    spans = agent.wait_spans(lambda s: len(by_kind(s, "SERVER")) >= 3 and
                             len(by_kind(s, "CLIENT")) >= 3)
    clients = sorted(by_kind(spans, "CLIENT"), key=lambda s: s["start_time_unix_nano"])
    servers = sorted(by_kind(spans, "SERVER"), key=lambda s: s["start_time_unix_nano"])
    for cli, srv in zip(clients, servers):
        assert srv["trace_id"] == cli["trace_id"]
        assert srv["parent_span_id"] == cli["span_id"]
    agent.stop()
    c = opt_counts(agent)
    assert (c["sent"], c["received"], c["used"], c["absent"]) == (3, 0, 0, 3), c
