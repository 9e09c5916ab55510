"""HTTP/2 and gRPC, read-only: real servers and clients in their own network
namespaces, selected by pid. gRPC with Node's @grpc/grpc-js and Debian's
python3-grpcio (generic handlers: no codegen), unary, server-streaming and
failing calls; cleartext h2 with prior knowledge (nghttpd from Debian's
nghttp2-server, curl --http2-prior-knowledge) and by HTTP/1.1 upgrade (curl
--http2, a python3-h2 server). Asserts span names, rpc.* and
http.* attributes, status codes and parents exactly.

python3-grpcio (gRPC C-core) writes each batch of frames with sendmsg and
one iovec per slice, its trailers last: the kernel copies up to 64 iovecs
(HT_MAX_IOV_MORE, within the payload limit), so its responses and their
grpc-status are read whole."""
import os
import subprocess
import time
from pathlib import Path

from conftest import PYTHON, SERVICES, attr, by_kind

ROOT = Path(__file__).resolve().parents[2]
NODE_PATH = str(ROOT / "tests" / "integration" / "otlp" / "node_modules")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
METHODS = ["SayHello", "ListFeatures", "Fail", "Crash"]
# grpc status of each method: OK, OK, NOT_FOUND (Trailers-Only), UNAVAILABLE
CODES = {"SayHello": 0, "ListFeatures": 0, "Fail": 5, "Crash": 14}
NAMES = {"SayHello": "OK", "ListFeatures": "OK", "Fail": "NOT_FOUND", "Crash": "UNAVAILABLE"}
MS = 1_000_000


def two_hosts(topo):
    c, s = topo.ns("c"), topo.ns("s")
    topo.link(c, "10.213.1.1", s, "10.213.1.2")
    return c, s


def wait_line(proc, what, timeout=20):
    deadline = time.time() + timeout
    line = proc.stdout.readline()
    assert line.strip() == b"listening", f"{what} did not start: {line!r}"
    assert time.time() < deadline


def node_server(topo, ns, port):
    p = topo.start(ns, ["node", str(SERVICES / "grpc_service.js"), "serve", "10.213.1.2",
                        str(port)], env={"NODE_PATH": NODE_PATH})
    wait_line(p, "node gRPC server")
    return p


def python_server(topo, ns, port):
    p = topo.start(ns, [PYTHON, str(SERVICES / "grpc_service.py"), "--host", "10.213.1.2",
                        "--port", str(port)])
    wait_line(p, "python gRPC server")
    return p


def python_client(ns, target, traceparent=TRACEPARENT):
    r = subprocess.run(["ip", "netns", "exec", ns, PYTHON, str(SERVICES / "grpc_service.py"),
                        "--call", target, "--traceparent", traceparent] +
                       sum((["--method", m] for m in METHODS), []),
                       capture_output=True, text=True, timeout=60)
    return r.stdout.split("\n")[:-1]


def node_client(ns, target, traceparent=TRACEPARENT):
    """Started, not run: it calls once it reads a line, so that the test can
    select it by pid first."""
    return subprocess.Popen(["ip", "netns", "exec", ns, "node", str(SERVICES / "grpc_service.js"),
                             "call", target, *METHODS, "--traceparent", traceparent,
                             "--after-stdin"], env=dict(os.environ, NODE_PATH=NODE_PATH),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def by_method(spans):
    out = {}
    for s in spans:
        out.setdefault(attr(s, "rpc.method"), []).append(s)
    return out


def test_grpc_node_server_spans_exact(topo, agent_factory):
    """Node grpc-js server traced, Python grpcio client carrying traceparent
    in its metadata: one SERVER span per call, exact."""
    c, s = two_hosts(topo)
    server = node_server(topo, s, 50051)
    agent = agent_factory("--pid", str(server.pid))
    assert python_client(c, "10.213.1.2:50051") == [f"{m} {NAMES[m]}" for m in METHODS]
    spans = agent.wait_spans(lambda sp: len(sp) >= 4)
    assert len(spans) == 4, spans
    calls = by_method(by_kind(spans, "SERVER"))
    assert sorted(calls) == sorted(METHODS)
    for m in METHODS:
        [span] = calls[m]
        assert span["name"] == f"helloworld.Greeter/{m}"
        assert span["trace_id"] == TRACE and span["parent_span_id"] == PARENT
        assert span["flags"] == 1
        assert attr(span, "rpc.system") == "grpc"
        assert attr(span, "rpc.service") == "helloworld.Greeter"
        assert attr(span, "rpc.grpc.status_code") == CODES[m]
        assert attr(span, "network.protocol.name") == "http"
        assert attr(span, "network.protocol.version") == "2"
        assert attr(span, "server.address") == "10.213.1.2"
        assert attr(span, "server.port") == 50051
        assert attr(span, "client.address") == "10.213.1.1"
        assert attr(span, "user_agent.original").startswith("grpc-python/")
        assert attr(span, "hoptrace.http2.headers_incomplete") is None
        assert attr(span, "http.request.method") is None  # rpc conventions, not http
        assert 0 < span["end_time_unix_nano"] - span["start_time_unix_nano"] < 2000 * MS
    # Server rules: NOT_FOUND is the caller's problem, UNAVAILABLE an error.
    assert [calls[m][0]["status"]["code"] for m in METHODS] == ["UNSET", "UNSET", "UNSET", "ERROR"]
    assert attr(calls["Crash"][0], "error.type") == "UNAVAILABLE"
    assert attr(calls["Fail"][0], "error.type") is None
    # Spans are distinct, one trace.
    assert len({sp["span_id"] for sp in spans}) == 4


def test_grpc_node_client_spans_follow_client_error_rules(topo, agent_factory):
    """Node grpc-js client traced (CLIENT spans) against a Python grpcio
    server: every non-OK status is an error on the client side."""
    c, s = two_hosts(topo)
    python_server(topo, s, 50052)
    client = node_client(c, "10.213.1.2:50052")
    try:
        agent = agent_factory("--pid", str(client.pid))
        out, _ = client.communicate("go\n", timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert out.split("\n")[:-1] == [f"{m} {NAMES[m]}" for m in METHODS]
    spans = agent.wait_spans(lambda sp: len(sp) >= 4)
    calls = by_method(by_kind(spans, "CLIENT"))
    assert sorted(calls) == sorted(METHODS), spans
    for m in METHODS:
        [span] = calls[m]
        assert span["name"] == f"helloworld.Greeter/{m}"
        assert attr(span, "rpc.grpc.status_code") == CODES[m]
        assert attr(span, "server.address") == "10.213.1.2"
        assert attr(span, "server.port") == 50052
        assert attr(span, "network.protocol.version") == "2"
        assert span["status"]["code"] == ("UNSET" if CODES[m] == 0 else "ERROR")
    assert attr(calls["Fail"][0], "error.type") == "NOT_FOUND"


def test_grpc_python_server_spans_exact(topo, agent_factory):
    """python3-grpcio server traced: the requests it reads (with their
    traceparent) and the responses it writes, one iovec per slice (see the
    module docstring), so names, rpc.*, parents and grpc-status are exact."""
    c, s = two_hosts(topo)
    server = python_server(topo, s, 50053)
    agent = agent_factory("--pid", str(server.pid))
    assert python_client(c, "10.213.1.2:50053") == [f"{m} {NAMES[m]}" for m in METHODS]
    spans = agent.wait_spans(lambda sp: len(sp) >= 4)
    calls = by_method(by_kind(spans, "SERVER"))
    assert sorted(calls) == sorted(METHODS), spans
    for m in METHODS:
        [span] = calls[m]
        assert span["name"] == f"helloworld.Greeter/{m}"
        assert span["trace_id"] == TRACE and span["parent_span_id"] == PARENT
        assert attr(span, "rpc.service") == "helloworld.Greeter"
        assert attr(span, "server.port") == 50053
        assert attr(span, "rpc.grpc.status_code") == CODES[m], (m, span)
        # Server spans: only UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
        # INTERNAL, UNAVAILABLE, DATA_LOSS are errors (semconv).
        assert span["status"]["code"] == ("ERROR" if CODES[m] == 14 else "UNSET"), (m, span)


def test_h2c_prior_knowledge_with_nghttpd_and_curl(topo, agent_factory, tmp_path):
    """Cleartext HTTP/2 with prior knowledge: nghttpd serves files, curl asks
    with a traceparent; the server is traced. Its span's parent is the
    incoming traceparent; statuses 200 and 404."""
    c, s = two_hosts(topo)
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.txt").write_text("hello over h2c\n")
    server = topo.start(s, ["nghttpd", "--no-tls", "-a", "10.213.1.2", "-d", str(www), "8082"])
    deadline = time.time() + 10
    while not _listening(s, 8082) and time.time() < deadline:
        time.sleep(0.05)
    agent = agent_factory("--pid", str(server.pid))

    def get(path):
        r = subprocess.run(["ip", "netns", "exec", c, "curl", "-s", "-o", "/dev/null",
                            "-w", "%{http_code} %{http_version}", "--http2-prior-knowledge",
                            "-H", f"traceparent: {TRACEPARENT}", "-H", "User-Agent: h2-test/1",
                            f"http://10.213.1.2:8082{path}"],
                           capture_output=True, text=True, timeout=30)
        return r.stdout

    assert get("/index.txt?secret=1") == "200 2"
    assert get("/missing") == "404 2"
    spans = agent.wait_spans(lambda sp: len(sp) >= 2)
    servers = sorted(by_kind(spans, "SERVER"), key=lambda sp: attr(sp, "url.path"))
    assert [attr(sp, "url.path") for sp in servers] == ["/index.txt", "/missing"], spans
    ok, missing = servers
    assert ok["name"] == "GET" and missing["name"] == "GET"
    assert attr(ok, "http.request.method") == "GET"
    assert attr(ok, "url.scheme") == "http"
    assert attr(ok, "url.query") == "secret=REDACTED"
    assert attr(ok, "http.response.status_code") == 200
    assert attr(missing, "http.response.status_code") == 404
    assert attr(ok, "network.protocol.version") == "2"
    assert attr(ok, "server.address") == "10.213.1.2"
    assert attr(ok, "server.port") == 8082
    assert attr(ok, "user_agent.original") == "h2-test/1"
    assert ok["trace_id"] == TRACE and ok["parent_span_id"] == PARENT
    assert ok["status"]["code"] == "UNSET" and missing["status"]["code"] == "UNSET"
    assert attr(ok, "rpc.system") is None


def _listening(ns, port):
    r = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tlnH", f"( sport = :{port} )"],
                       capture_output=True, text=True)
    return bool(r.stdout.strip())


def test_h2c_upgrade_from_http1_is_followed_as_http2(topo, agent_factory):
    """curl --http2 on an http:// URL asks for h2c by upgrade (RFC 7540 3.2):
    its first request goes as HTTP/1.1 with "Upgrade: h2c" and
    HTTP2-Settings, the server (python3-h2, services/h2c_upgrade_server.py)
    answers "101 Switching Protocols" and then stream 1's response in
    HTTP/2; curl sends the next two requests on the same connection as
    streams 3 and 5. Server and client traced: on both sides the agent hands
    the connection from its HTTP/1 parser to its HTTP/2 parser at the end of
    the 101, so each request is one span (no span for the 101), with its
    path and status. curl's CLIENT spans continue the traceparent it sent (in
    HTTP/1 headers for stream 1, in HPACK for the others); each SERVER span
    is the child of the CLIENT span of its request."""
    from db_util import Gated
    c, s = two_hosts(topo)
    server = topo.start(s, [PYTHON, str(SERVICES / "h2c_upgrade_server.py"), "--host",
                            "10.213.1.2", "--port", "8083"])
    wait_line(server, "h2c upgrade server")
    base = "http://10.213.1.2:8083"
    paths = ["/hello", "/missing", "/hello?secret=1"]
    argv = ["curl", "-s", "--http2", "-w", "%{http_code} %{http_version}\\n",
            "-H", f"traceparent: {TRACEPARENT}", "-H", "User-Agent: h2c-test/1"]
    for p in paths:
        argv += ["-o", "/dev/null", base + p]
    client = Gated(topo, c, argv)
    agent = agent_factory("--pid", str(server.pid), "--pid", str(client.pid), "--no-propagation")
    code, out = client.run()
    assert code == 0 and out.split() == ["200", "2", "404", "2", "200", "2"], out
    spans = agent.wait_spans(lambda sp: len(by_kind(sp, "SERVER")) >= 3 and
                             len(by_kind(sp, "CLIENT")) >= 3)
    assert len(spans) == 6, [(sp["kind"], sp["name"], attr(sp, "http.response.status_code"))
                             for sp in spans]
    statuses = [200, 404, 200]
    ordered = {kind: sorted(by_kind(spans, kind), key=lambda sp: sp["start_time_unix_nano"])
               for kind in ("SERVER", "CLIENT")}
    for kind, got in ordered.items():
        for span, path, status in zip(got, paths, statuses):
            assert span["name"] == "GET", (kind, span["name"])
            assert attr(span, "http.request.method") == "GET"
            assert attr(span, "http.response.status_code") == status, (kind, path)
            assert attr(span, "network.protocol.version") == "2", (kind, path)
            assert attr(span, "user_agent.original") == "h2c-test/1", (kind, path)
            assert attr(span, "server.address") == "10.213.1.2"
            assert attr(span, "server.port") == 8083
            assert span["end_time_unix_nano"] >= span["start_time_unix_nano"]
            assert span["trace_id"] == TRACE
            if kind == "SERVER":
                assert attr(span, "url.path") == path.split("?")[0]
                assert span["status"]["code"] == "UNSET"
            else:
                assert span["parent_span_id"] == PARENT
                assert attr(span, "url.full") == base + path.replace("secret=1",
                                                                     "secret=REDACTED")
                assert span["status"]["code"] == ("ERROR" if status == 404 else "UNSET")
        # The upgraded request (stream 1) ends before the next one starts.
        assert got[0]["end_time_unix_nano"] <= got[1]["start_time_unix_nano"]
    for srv, cli in zip(ordered["SERVER"], ordered["CLIENT"]):
        assert srv["parent_span_id"] == cli["span_id"], attr(srv, "url.path")
    agent.stop()
    assert "secret=1" not in agent.out.read_text()
