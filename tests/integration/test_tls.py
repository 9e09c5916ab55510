"""HTTPS through uprobes on OpenSSL: curl -> nginx (TLS, proxy to an HTTPS
upstream) -> Python `ssl` service -> Node `https` service, each in its own
network namespace, none of them instrumented, selected by pid. Certificates
are made here with the `openssl` CLI.

What runs where: nginx, curl and Python's _ssl use Debian's libssl.so.3
(nginx and curl through fd BIOs, Python through SSL_read_ex/SSL_write_ex);
node drives OpenSSL (its own, exported by the executable, in nodesource's
builds; libssl.so.3 in Debian's) through memory BIOs, so its TLS sessions
are tied to sockets by the thread's socket reads (bpf/tls_session.bpf.h)."""
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import bpf_util
from conftest import PYTHON, SERVICES, attr, by_kind, hoptrace_bin
from propagation_util import TestCgroup, nginx_workers, port_open

MS = 1_000_000
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
PY_SLEEP_MS, NODE_SLEEP_MS = 50, 100
BIG = 16 << 20

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  server {{
    listen {host}:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.3;
    location / {{
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_trusted_certificate {cert};
      proxy_ssl_verify on;
      proxy_ssl_name hoptrace.test;
      proxy_ssl_session_reuse on;
    }}
  }}
}}
"""


def make_cert(d, ips):
    """One self-signed certificate for every server of the test (its own CA)."""
    key, cert = d / "key.pem", d / "cert.pem"
    # nginx checks an upstream's certificate by name (proxy_ssl_name), not IP.
    san = ",".join(["DNS:hoptrace.test"] + [f"IP:{ip}" for ip in ips])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=hoptrace-test",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True)
    return cert, key


class Chain:
    """The namespaces, the certificate and the three HTTPS servers."""

    def __init__(self, topo, cgroup=None):
        self.topo = topo
        # Services join this cgroup (propagation serves only its processes).
        self.cgroup = cgroup
        self.kw = {"preexec_fn": cgroup.preexec()} if cgroup else {}
        self.dir = Path(f"/tmp/ht{topo.tag}")
        self.dir.mkdir(exist_ok=True)
        self.c, self.a, self.b, self.d = (topo.ns(n) for n in ("c", "a", "b", "d"))
        topo.link(self.c, "10.211.1.1", self.a, "10.211.1.2")
        topo.link(self.a, "10.211.2.1", self.b, "10.211.2.2")
        topo.link(self.b, "10.211.3.1", self.d, "10.211.3.2")
        self.cert, self.key = make_cert(self.dir, ["10.211.1.2", "10.211.2.2", "10.211.3.1",
                                                   "10.211.3.2", "10.211.4.2"])

    def node(self, exe="node", downstream=""):
        extra = ["--downstream", downstream, "--cafile", str(self.cert)] if downstream else []
        p = self.topo.start(self.d, [exe, str(SERVICES / "tls_service.js"), "--host",
                                     "10.211.3.2", "--port", "7443", "--cert", str(self.cert),
                                     "--key", str(self.key), "--sleep-ms", str(NODE_SLEEP_MS)]
                            + extra, **self.kw)
        assert p.stdout.readline().strip() == b"listening", "node did not start"
        return p

    def python(self, host="10.211.2.2", downstream="https://10.211.3.2:7443"):
        script = self.dir / "pysvc.py"
        if not script.exists():
            script.symlink_to(SERVICES / "http_service.py")
        extra = ["--downstream", downstream] if downstream else []
        p = self.topo.start(self.b, [PYTHON, str(script), "--host", host, "--port",
                                     "9443", "--sleep-ms", str(PY_SLEEP_MS), "--cert",
                                     str(self.cert), "--key", str(self.key), "--cafile",
                                     str(self.cert)] + extra, **self.kw)
        assert p.stdout.readline().strip() == b"listening", "python service did not start"
        return p

    def nginx(self):
        d = self.dir / "nginx"
        d.mkdir(exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=d, host="10.211.1.2", port=8443, cert=self.cert,
                                          key=self.key, upstream="https://10.211.2.2:9443"))
        p = self.topo.start(self.a, ["nginx", "-c", str(conf), "-p", str(d)], **self.kw)
        deadline = time.time() + 10
        while time.time() < deadline:
            kids = nginx_workers(p.pid)
            if kids and port_open(self.topo, self.a, 8443):
                if self.cgroup:
                    self.cgroup.extra_pids += kids  # killed by pid at the end
                return p
            time.sleep(0.05)
        raise AssertionError("nginx did not start: " + (d / "error.log").read_text())

    def curl(self, url, *extra, out="/dev/null"):
        r = subprocess.run(["ip", "netns", "exec", self.c, "curl", "-s", "--cacert",
                            str(self.cert), "-o", out, "-w", "%{http_code}", "-m", "30"]
                           + list(extra) + [url], capture_output=True, text=True)
        return r.stdout


def dur(span):
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def service_of(span):
    return span["resource"]["attributes"]["service.name"]


def tls_stats(agent):
    m = re.findall(r"tls \(final\): (.*)", agent.log_text())
    assert m, agent.log_text()
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in m[-1].split())}


@pytest.fixture
def cg(topo):
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


@pytest.mark.parametrize("propagation", [False, True], ids=["read-only", "propagation-on"])
def test_https_chain_exact_span_tree(topo, cg, agent_factory, propagation):
    """The same tree with propagation on: the kernel then decides the
    contexts of TLS plaintext requests too (their heads are scanned like
    clear-text ones), and nothing is injected into ciphertext."""
    ch = Chain(topo, cg if propagation else None)
    node, py, nginx = ch.node(), ch.python(), ch.nginx()
    extra = ["--propagation-cgroup", str(cg.path)] if propagation else []
    agent = agent_factory("--pid", str(nginx.pid), "--pid", str(py.pid), "--pid", str(node.pid),
                          *extra)
    assert "tls: probing" in agent.log_text()
    code = ch.curl("https://10.211.1.2:8443/work?user=alice", "-H",
                   f"traceparent: 00-{TRACE}-{PARENT}-01", "-H", "User-Agent: tls-test/1")
    assert code == "200", (ch.dir / "nginx" / "error.log").read_text()
    spans = agent.wait_spans(lambda s: len(s) >= 5)
    time.sleep(1.0)  # nothing more may come: the ciphertext makes no span
    spans = agent.spans()
    assert len(spans) == 5, [(s["kind"], service_of(s), s["name"]) for s in spans]

    [ng_srv] = by_kind(spans, "SERVER", "nginx")
    [ng_cli] = by_kind(spans, "CLIENT", "nginx")
    [py_srv] = by_kind(spans, "SERVER", "pysvc")
    [py_cli] = by_kind(spans, "CLIENT", "pysvc")
    [nd_srv] = [s for s in by_kind(spans, "SERVER")
                if s["resource"]["attributes"]["process.pid"] == node.pid]

    # One trace, the caller's, and the chain of parents.
    assert {s["trace_id"] for s in spans} == {TRACE}, [
        (s["kind"], service_of(s), s["trace_id"], s["span_id"], s["parent_span_id"])
        for s in spans]
    assert ng_srv["parent_span_id"] == PARENT
    assert ng_cli["parent_span_id"] == ng_srv["span_id"]
    assert py_srv["parent_span_id"] == ng_cli["span_id"]
    assert py_cli["parent_span_id"] == py_srv["span_id"]
    assert nd_srv["parent_span_id"] == py_cli["span_id"]

    # HTTPS spans carry what plaintext ones do, with the https scheme.
    for s in (ng_srv, py_srv, nd_srv):
        assert s["name"] == "GET"
        assert attr(s, "url.scheme") == "https"
        assert attr(s, "url.path") == "/work"
        assert attr(s, "http.response.status_code") == 200
        assert attr(s, "network.protocol.version") == "1.1"
        assert s["status"]["code"] == "UNSET"
    assert attr(ng_srv, "url.query") == "user=REDACTED"
    assert attr(ng_srv, "user_agent.original") == "tls-test/1"
    assert attr(ng_srv, "client.address") == "10.211.1.1"
    assert attr(ng_srv, "server.port") == 8443
    assert attr(py_srv, "client.address") == "10.211.2.1"
    assert attr(nd_srv, "client.address") == "10.211.3.1"
    assert attr(nd_srv, "server.port") == 7443
    assert attr(ng_cli, "url.full") == "https://10.211.2.2:9443/work?user=REDACTED"
    assert attr(py_cli, "url.full") == "https://10.211.3.2:7443/work"
    for s, peer, port in ((ng_cli, "10.211.2.2", 9443), (py_cli, "10.211.3.2", 7443)):
        assert attr(s, "network.peer.address") == peer
        assert attr(s, "network.peer.port") == port
        assert attr(s, "http.response.status_code") == 200
    # nginx 1.22 offers its upstreams TLS 1.0-1.2 only (proxy_ssl_protocols,
    # left as is); its clients 1.3 only (ssl_protocols above); the others
    # negotiate 1.3. Both ends of a connection must agree.
    assert [attr(s, "tls.protocol.version") for s in (ng_srv, ng_cli, py_srv, py_cli, nd_srv)] \
        == ["1.3", "1.2", "1.2", "1.3", "1.3"]
    assert service_of(nd_srv) not in ("nginx", "pysvc")
    assert nd_srv["resource"]["attributes"]["process.pid"] == node.pid
    assert py_srv["resource"]["attributes"]["process.pid"] == py.pid

    # Durations from the TLS calls, within bounds of the sleeps, nested.
    assert NODE_SLEEP_MS * MS <= dur(nd_srv) < (NODE_SLEEP_MS + 100) * MS
    assert dur(nd_srv) <= dur(py_cli) < (NODE_SLEEP_MS + 300) * MS
    assert (PY_SLEEP_MS + NODE_SLEEP_MS) * MS <= dur(py_srv) < (PY_SLEEP_MS + NODE_SLEEP_MS
                                                               + 400) * MS
    assert dur(py_srv) <= dur(ng_cli) <= dur(ng_srv) < 2000 * MS
    for parent, child in ((ng_srv, ng_cli), (ng_cli, py_srv), (py_srv, py_cli),
                          (py_cli, nd_srv)):
        assert parent["start_time_unix_nano"] <= child["start_time_unix_nano"]
        assert child["end_time_unix_nano"] <= parent["end_time_unix_nano"]

    agent.stop()
    t = tls_stats(agent)
    # libssl.so.3, and node's executable when it carries its own OpenSSL
    # (nodesource builds; Debian's nodejs uses libssl.so.3).
    assert t["attached"] >= 1
    assert t["calls_by_thread"] >= 1  # node's memory BIOs
    assert t["calls_by_syscall"] >= 1
    assert agent.final_stats["conns"] == "0"


@pytest.mark.parametrize("propagation", [False, True], ids=["read-only", "propagation-on"])
def test_https_chain_to_a_go_service(topo, cg, agent_factory, propagation):
    """The issue's whole chain, every hop HTTPS and none instrumented:
    curl -> nginx -> Python ssl -> Node https -> Go net/http (crypto/tls,
    tests/go/tlsfront): seven spans, one trace, each the child of the one
    before."""
    go_bin = os.environ.get("GO_TLSFRONT_BIN", "")
    assert go_bin and Path(go_bin).exists(), "GO_TLSFRONT_BIN not built (run through ctest)"
    ch = Chain(topo, cg)
    e = topo.ns("e")
    topo.link(ch.d, "10.211.4.1", e, "10.211.4.2")
    go = topo.start(e, [go_bin, "-listen", "10.211.4.2:6443", "-cert", str(ch.cert), "-key",
                        str(ch.key)], preexec_fn=cg.preexec())
    deadline = time.time() + 10
    while not port_open(topo, e, 6443):
        assert time.time() < deadline, "the Go service did not start"
        time.sleep(0.05)
    # Node calls DOWNSTREAM + "/work": tlsfront's /leaf/ID answers any ID.
    node = ch.node(downstream="https://10.211.4.2:6443/leaf/n1")
    py, nginx = ch.python(), ch.nginx()
    extra = ["--propagation-cgroup", str(cg.path)] if propagation else []
    agent = agent_factory(*[a for p in (nginx, py, node, go) for a in ("--pid", str(p.pid))],
                          *extra)
    out = ch.dir / "chain-go.out"
    assert ch.curl("https://10.211.1.2:8443/work", out=str(out)) == "200", \
        (ch.dir / "nginx" / "error.log").read_text()
    assert out.read_text() == "via via leaf n1/work\n"  # Python and Node each add "via "
    spans = agent.wait_spans(lambda s: len(s) >= 7)
    time.sleep(1.0)  # nothing more may come: the ciphertext makes no span
    spans = agent.spans()
    shape = [(s["kind"], service_of(s), s["name"], s["span_id"], s["parent_span_id"])
             for s in spans]
    assert len(spans) == 7, shape

    def of(kind, pid):
        [s] = [s for s in by_kind(spans, kind) if s["resource"]["attributes"]["process.pid"] == pid]
        return s
    ng_srv = by_kind(spans, "SERVER", "nginx")[0]
    ng_cli = by_kind(spans, "CLIENT", "nginx")[0]
    py_srv, py_cli = of("SERVER", py.pid), of("CLIENT", py.pid)
    nd_srv, nd_cli = of("SERVER", node.pid), of("CLIENT", node.pid)
    go_srv = of("SERVER", go.pid)
    chain = [ng_srv, ng_cli, py_srv, py_cli, nd_srv, nd_cli, go_srv]
    assert len({s["trace_id"] for s in spans}) == 1, shape
    assert ng_srv["parent_span_id"] == ""
    for parent, child in zip(chain, chain[1:]):
        assert child["parent_span_id"] == parent["span_id"], shape
        assert parent["start_time_unix_nano"] <= child["start_time_unix_nano"]
        assert child["end_time_unix_nano"] <= parent["end_time_unix_nano"]
    for s in chain:
        assert attr(s, "http.response.status_code") == 200, s
        assert s["status"]["code"] == "UNSET"
    for s in (ng_srv, py_srv, nd_srv, go_srv):
        assert attr(s, "url.scheme") == "https"
    assert attr(go_srv, "url.path") == "/leaf/n1/work"
    assert attr(go_srv, "client.address") == "10.211.4.1"
    assert attr(go_srv, "server.port") == 6443
    assert attr(nd_cli, "url.full") == "https://10.211.4.2:6443/leaf/n1/work"
    assert dur(go_srv) <= dur(nd_cli)
    assert NODE_SLEEP_MS * MS <= dur(nd_srv)


def test_node_as_https_client(topo, agent_factory):
    """Node calls an HTTPS service (memory BIOs on the client side too: its
    sessions are tied to sockets by the thread's reads during the handshake)."""
    ch = Chain(topo)
    py = ch.python(host="10.211.3.1", downstream="")
    node = ch.node(downstream="https://10.211.3.1:9443")
    agent = agent_factory("--pid", str(py.pid), "--pid", str(node.pid))
    r = subprocess.run(["ip", "netns", "exec", ch.b, "curl", "-s", "--cacert", str(ch.cert),
                        "-o", "/dev/null", "-w", "%{http_code}", "https://10.211.3.2:7443/work"],
                       capture_output=True, text=True)
    assert r.stdout == "200"
    spans = agent.wait_spans(lambda s: len(s) >= 3)
    assert len(spans) == 3, [(s["kind"], service_of(s)) for s in spans]
    [nd_srv] = [s for s in by_kind(spans, "SERVER") if s["resource"]["attributes"]["process.pid"]
                == node.pid]
    [nd_cli] = by_kind(spans, "CLIENT")
    [py_srv] = by_kind(spans, "SERVER", "pysvc")
    assert nd_cli["resource"]["attributes"]["process.pid"] == node.pid
    assert attr(nd_cli, "url.full") == "https://10.211.3.1:9443/work"
    assert attr(nd_cli, "http.response.status_code") == 200
    assert attr(nd_cli, "tls.protocol.version") == "1.3"
    assert attr(py_srv, "client.address") == "10.211.3.2"
    assert nd_cli["parent_span_id"] == nd_srv["span_id"]
    assert py_srv["parent_span_id"] == nd_cli["span_id"]
    assert {s["trace_id"] for s in spans} == {nd_srv["trace_id"]}
    assert PY_SLEEP_MS * MS <= dur(py_srv) <= dur(nd_cli) <= dur(nd_srv)
    agent.stop()
    t = tls_stats(agent)
    assert t["calls_unbound"] == 0
    assert t["calls_by_thread"] >= 2  # node's server and client sessions


def test_large_body_keepalive_byte_exact(topo, agent_factory, tmp_path):
    """16 MiB through nginx from the Python service, then three requests on
    one kept-alive connection to Node: responses byte-exact, one span each."""
    ch = Chain(topo)
    node, py, nginx = ch.node(), ch.python(), ch.nginx()
    agent = agent_factory("--pid", str(nginx.pid), "--pid", str(py.pid), "--pid", str(node.pid))
    out = tmp_path / "big.bin"
    assert ch.curl(f"https://10.211.1.2:8443/big/{BIG}", out=str(out)) == "200"
    want = hashlib.sha256((bytes(range(256)) * (BIG // 256))).hexdigest()
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want

    # Keep-alive: one curl, three requests, one TLS connection to node.
    r = subprocess.run(["ip", "netns", "exec", ch.b, "curl", "-s", "--cacert", str(ch.cert),
                        "-w", "%{http_code}\n", "-o", "/dev/null", "https://10.211.3.2:7443/status/201",
                        "-o", "/dev/null", "https://10.211.3.2:7443/big/100000",
                        "-o", "/dev/null", "https://10.211.3.2:7443/status/404"],
                       capture_output=True, text=True)
    assert r.stdout.split() == ["201", "200", "404"]

    spans = agent.wait_spans(lambda s: len(by_kind(s, "SERVER")) >= 5)
    servers = by_kind(spans, "SERVER")
    big = [s for s in servers if attr(s, "url.path") == f"/big/{BIG}"]
    assert {service_of(s) for s in big} == {"nginx", "pysvc"}
    for s in big:
        assert attr(s, "http.response.status_code") == 200
        assert attr(s, "http.response.body.size") == BIG
        assert attr(s, "url.scheme") == "https"
    [ng_cli] = by_kind(spans, "CLIENT", "nginx")
    assert attr(ng_cli, "http.response.body.size") == BIG
    node_srv = sorted((s for s in servers if s["resource"]["attributes"]["process.pid"]
                       == node.pid), key=lambda s: s["start_time_unix_nano"])
    assert [attr(s, "http.response.status_code") for s in node_srv] == [201, 200, 404]
    assert [attr(s, "url.path") for s in node_srv] == ["/status/201", "/big/100000",
                                                       "/status/404"]
    assert len({attr(s, "client.port") for s in node_srv}) == 1  # one connection
    assert attr(node_srv[1], "http.response.body.size") == 100000
    assert len(spans) == 6, [(s["kind"], service_of(s), attr(s, "url.path")) for s in spans]


RESUME_CLIENT = """
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # a session ticket is ready after the handshake
session, reused = None, []
for i in range(2):
    s = ctx.wrap_socket(socket.create_connection(("10.211.2.2", 9443)), session=session,
                        server_hostname="hoptrace.test")
    s.sendall(b"GET /status/20%d HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n" % (i + 2))
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    reused.append(s.session_reused)
    session = s.session
    print(data.split(b"\\r\\n")[0].decode())
    s.close()
print(reused)
"""


def test_half_closed_client_gets_the_whole_response(topo, agent_factory):
    """A client that ends its side right after its request (close_notify,
    then FIN) while the response is still to come: both traced, the bytes it
    gets are exactly the server's, and the exchange is one span each side."""
    ch = Chain(topo)
    node = ch.node()
    n = 3 << 20
    # The client waits for a line before it connects: the agent follows it first.
    client = subprocess.Popen(["ip", "netns", "exec", ch.b, "node",
                               str(SERVICES / "tls_halfclose_client.js"), "10.211.3.2", "7443",
                               f"/big/{n}", str(ch.cert), "--wait"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        agent = agent_factory("--pid", str(node.pid), "--pid", str(client.pid))
        out, _ = client.communicate("go\n", timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, out
    want = hashlib.sha256(bytes(range(256)) * (n // 256)).hexdigest()
    assert out.split() == ["HTTP/1.1", "200", str(n), want], out
    spans = agent.wait_spans(lambda s: len(by_kind(s, "SERVER")) >= 1 and
                             len(by_kind(s, "CLIENT")) >= 1)
    time.sleep(1.0)
    spans = agent.spans()
    [srv] = by_kind(spans, "SERVER")
    [cli] = by_kind(spans, "CLIENT")
    assert srv["parent_span_id"] == cli["span_id"]
    for s in (srv, cli):
        assert attr(s, "http.response.status_code") == 200
        assert attr(s, "http.response.body.size") == n
    assert attr(srv, "url.path") == f"/big/{n}"
    assert attr(srv, "url.scheme") == "https"


def test_session_resumption_and_tls12(topo, agent_factory):
    """Two connections, the second resuming the first's TLS 1.2 session (no
    certificate exchange): both exchanges traced, version 1.2."""
    ch = Chain(topo)
    py = ch.python()
    agent = agent_factory("--pid", str(py.pid))
    r = subprocess.run(["ip", "netns", "exec", ch.a, PYTHON, "-c", RESUME_CLIENT,
                        str(ch.cert)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "HTTP/1.1 202 Accepted"
    assert lines[1] == "HTTP/1.1 203 Non-Authoritative Information"
    assert lines[2] == "[False, True]"
    spans = agent.wait_spans(lambda s: len(s) >= 2)
    servers = sorted(by_kind(spans, "SERVER", "pysvc"), key=lambda s: s["start_time_unix_nano"])
    assert [attr(s, "http.response.status_code") for s in servers] == [202, 203]
    assert [attr(s, "tls.protocol.version") for s in servers] == ["1.2", "1.2"]
    assert all(attr(s, "url.scheme") == "https" for s in servers)
    assert len(spans) == 2


def test_process_started_later_and_detach_at_exit(topo, agent_factory):
    """A Node service started after the agent (selected by a name only it
    has: a link to node named after this test) is traced; when it exits, its
    probes go; after the agent exits no program of ours stays in the kernel."""
    ch = Chain(topo)
    name = f"tlsnode{topo.tag}"
    (ch.dir / name).symlink_to(shutil.which("node"))
    agent = agent_factory("--exe", name)
    node = ch.node(str(ch.dir / name))
    deadline = time.time() + 10
    while "tls: probing" not in agent.log_text() and time.time() < deadline:
        time.sleep(0.05)
    r = subprocess.run(["ip", "netns", "exec", ch.b, "curl", "-s", "--cacert", str(ch.cert),
                        "-o", "/dev/null", "-w", "%{http_code}", "https://10.211.3.2:7443/status/200"],
                       capture_output=True, text=True)
    assert r.stdout == "200"
    spans = agent.wait_spans(lambda s: len(s) >= 1)
    [srv] = spans
    assert srv["kind"] == "SERVER"
    assert attr(srv, "url.scheme") == "https"
    assert srv["resource"]["attributes"]["process.pid"] == node.pid
    node.terminate()
    node.wait(timeout=10)
    deadline = time.time() + 10
    while "probes removed" not in agent.log_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "probes removed" in agent.log_text(), agent.log_text()
    held = bpf_util.prog_ids(agent.proc.pid)
    names = {bpf_util.prog_name(i) for i in held}
    assert {"ht_ssl_read", "ht_ssl_write", "ht_ssl_return"} <= names
    agent.stop()
    t = tls_stats(agent)
    assert t["attached"] == t["detached"] >= 1
    # Every program the agent held (uprobes included) is gone with it.
    assert not bpf_util.left_loaded("prog", held)


def test_check_names_tls_libraries(topo):
    """hoptrace check --pid N says which TLS libraries a process maps and
    whether each can be probed."""
    ch = Chain(topo)
    node, py = ch.node(), ch.python()
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(py.pid), "--pid", str(node.pid)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout
    py_lines = [l for l in out.splitlines() if f"TLS in pid {py.pid} " in l]
    node_lines = [l for l in out.splitlines() if f"TLS in pid {node.pid} " in l]
    assert any(l.startswith("ok") and "libssl.so.3" in l and "can be probed: SSL_write" in l
               and "SSL_read_ex" in l for l in py_lines), out
    # Node with its own OpenSSL (nodesource) or Debian's (libssl.so.3).
    assert any(l.startswith("ok") and ("(executable)" in l or "libssl.so" in l)
               and "can be probed" in l for l in node_lines), out


def ssl_entry_bytes(pid, symbol="SSL_write_ex"):
    """(byte in process pid's memory, byte in the file) at the entry of
    `symbol` in the libssl it maps: equal when no uprobe breakpoint is there."""
    maps = [l.split() for l in Path(f"/proc/{pid}/maps").read_text().splitlines()]
    [lib] = {m[5] for m in maps if len(m) >= 6 and "/libssl.so" in m[5]}
    host = f"/proc/{pid}/root{lib}"
    syms = subprocess.run(["readelf", "-W", "--dyn-syms", host], capture_output=True, text=True,
                          check=True).stdout
    m = re.search(r"^\s*\d+:\s+([0-9a-f]+)\s+\d+\s+FUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+"
                  + symbol + r"(@@?\S+)?$", syms, re.M)
    assert m, f"{symbol} not in {lib}"
    vaddr = int(m.group(1), 16)
    segs = subprocess.run(["readelf", "-lW", host], capture_output=True, text=True,
                          check=True).stdout
    off = None
    for s in re.findall(r"^\s+LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)",
                        segs, re.M):
        f_off, v, size = (int(x, 16) for x in s)
        if v <= vaddr < v + size:
            off = vaddr - v + f_off
    assert off is not None
    [addr] = [int(m[0].split("-")[0], 16) + off - int(m[2], 16) for m in maps
              if len(m) >= 6 and m[5] == lib and "x" in m[1] and
              int(m[2], 16) <= off < int(m[2], 16) + int(m[0].split("-")[1], 16) -
              int(m[0].split("-")[0], 16)]
    with open(f"/proc/{pid}/mem", "rb") as mem, open(host, "rb") as f:
        mem.seek(addr)
        f.seek(off)
        return mem.read(1), f.read(1)


def test_unselected_process_using_the_same_libssl_gets_no_breakpoint(tmp_path, agent_factory):
    """Uprobes are attached per selected process: another process mapping
    the same libssl.so.3 keeps its code untouched and pays no trap; the
    selected one has the breakpoint, and loses it when the agent exits.
    Both map a private copy of Debian's libssl.so.3 (LD_LIBRARY_PATH), so
    that no other tracer on the machine can have probes on that file."""
    shutil.copy2("/usr/lib/x86_64-linux-gnu/libssl.so.3", tmp_path / "libssl.so.3")
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    code = "import ssl, time; print('ready', flush=True); time.sleep(120)"
    procs = [subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    selected, other = procs
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
            assert str(tmp_path / "libssl.so.3") in Path(f"/proc/{p.pid}/maps").read_text()
        agent = agent_factory("--pid", str(selected.pid))
        deadline = time.time() + 10
        while f"in pid {selected.pid}" not in agent.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert f"in pid {selected.pid}" in agent.log_text(), agent.log_text()
        in_mem, in_file = ssl_entry_bytes(selected.pid)
        assert in_mem == b"\xcc" and in_file != b"\xcc", (in_mem, in_file)
        in_mem, in_file = ssl_entry_bytes(other.pid)
        assert in_mem == in_file, "a process that is not selected got a breakpoint"
        agent.stop()
        in_mem, in_file = ssl_entry_bytes(selected.pid)
        assert in_mem == in_file, "the breakpoint stayed after the agent exited"
    finally:
        for p in procs:
            p.kill()
            p.wait()
