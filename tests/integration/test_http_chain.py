"""curl -> service A (frontend) -> service B (backend), three network
namespaces, real Python servers that know nothing about tracing. The agent
must produce the exact span tree with correct ids, parents, attributes and
durations."""
import time

from conftest import attr, by_kind

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
A_SLEEP_MS, B_SLEEP_MS = 50, 100
MS = 1_000_000


def chain(topo):
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.210.1.1", a, "10.210.1.2")
    topo.link(a, "10.210.2.1", b, "10.210.2.2")
    backend = topo.service(b, "10.210.2.2", 9090, "backend", sleep_ms=B_SLEEP_MS,
                           env={"OTEL_SERVICE_NAME": "backend-svc"})
    frontend = topo.service(a, "10.210.1.2", 8080, "frontend", sleep_ms=A_SLEEP_MS,
                            downstream="http://10.210.2.2:9090")
    return c, frontend, backend


def dur(span):
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def three_spans(spans):
    return len(spans) >= 3


def test_chain_joins_incoming_traceparent(topo, agent_factory):
    c, frontend, backend = chain(topo)
    agent = agent_factory("--pid", str(frontend.pid), "--pid", str(backend.pid))
    code = topo.curl(c, "http://10.210.1.2:8080/work?user=alice&token=s3cret",
                     "-H", f"traceparent: 00-{TRACE}-{PARENT}-01",
                     "-H", "tracestate: vendor=abc,other=1", "-H", "User-Agent: chain-test/1")
    assert code == "200"
    spans = agent.wait_spans(three_spans)
    assert len(spans) == 3, spans

    [a_srv] = by_kind(spans, "SERVER", "frontend")
    [a_cli] = by_kind(spans, "CLIENT", "frontend")
    [b_srv] = by_kind(spans, "SERVER", "backend-svc")

    # One trace, the caller's; parent links form the chain.
    assert {s["trace_id"] for s in spans} == {TRACE}
    assert a_srv["parent_span_id"] == PARENT
    assert a_cli["parent_span_id"] == a_srv["span_id"]
    assert b_srv["parent_span_id"] == a_cli["span_id"]
    assert len({s["span_id"] for s in spans}) == 3
    assert a_srv["trace_state"] == "vendor=abc,other=1"
    assert a_srv["flags"] == 1

    # Names and HTTP semantic-convention attributes.
    assert [s["name"] for s in (a_srv, a_cli, b_srv)] == ["GET"] * 3
    assert attr(a_srv, "http.request.method") == "GET"
    assert attr(a_srv, "url.path") == "/work"
    assert attr(a_srv, "url.query") == "user=REDACTED&token=REDACTED"
    assert attr(a_srv, "http.response.status_code") == 200
    assert attr(a_srv, "client.address") == "10.210.1.1"
    assert attr(a_srv, "network.peer.address") == "10.210.1.1"
    assert attr(a_srv, "server.address") == "10.210.1.2"
    assert attr(a_srv, "server.port") == 8080
    assert attr(a_srv, "user_agent.original") == "chain-test/1"
    assert attr(a_srv, "network.protocol.version") == "1.1"
    assert a_srv["status"]["code"] == "UNSET"

    assert attr(a_cli, "url.full") == "http://10.210.2.2:9090/work"
    assert attr(a_cli, "server.address") == "10.210.2.2"
    assert attr(a_cli, "server.port") == 9090
    assert attr(a_cli, "network.peer.address") == "10.210.2.2"
    assert attr(a_cli, "network.peer.port") == 9090
    assert attr(a_cli, "http.response.status_code") == 200

    assert attr(b_srv, "url.path") == "/work"
    assert attr(b_srv, "client.address") == "10.210.2.1"
    assert attr(b_srv, "http.response.status_code") == 200

    # Resources: service names (env and derived), pid, executable.
    ra, rb = a_srv["resource"]["attributes"], b_srv["resource"]["attributes"]
    assert ra["service.name"] == "frontend"
    assert rb["service.name"] == "backend-svc"
    assert ra["process.pid"] == frontend.pid
    assert rb["process.pid"] == backend.pid
    assert ra["process.executable.name"].startswith("python3")
    assert ra["host.name"]

    # Durations from kernel timestamps, within bounds of the sleeps.
    assert B_SLEEP_MS * MS <= dur(b_srv) < (B_SLEEP_MS + 80) * MS
    assert dur(b_srv) <= dur(a_cli) < (B_SLEEP_MS + 150) * MS
    assert (A_SLEEP_MS + B_SLEEP_MS) * MS <= dur(a_srv) < (A_SLEEP_MS + B_SLEEP_MS + 200) * MS
    # Nesting in time: child inside parent.
    assert a_srv["start_time_unix_nano"] <= a_cli["start_time_unix_nano"]
    assert a_cli["end_time_unix_nano"] <= a_srv["end_time_unix_nano"]
    assert a_cli["start_time_unix_nano"] <= b_srv["start_time_unix_nano"]
    assert b_srv["end_time_unix_nano"] <= a_cli["end_time_unix_nano"]
    assert abs(a_srv["start_time_unix_nano"] - time.time_ns()) < 60_000 * MS


def test_chain_without_header_starts_new_trace(topo, agent_factory):
    c, frontend, backend = chain(topo)
    agent = agent_factory("--pid", str(frontend.pid), "--pid", str(backend.pid))
    assert topo.curl(c, "http://10.210.1.2:8080/work") == "200"
    spans = agent.wait_spans(three_spans)
    assert len(spans) == 3
    [a_srv] = by_kind(spans, "SERVER", "frontend")
    [a_cli] = by_kind(spans, "CLIENT", "frontend")
    [b_srv] = by_kind(spans, "SERVER", "backend-svc")
    assert a_srv["parent_span_id"] == ""
    assert len(a_srv["trace_id"]) == 32 and a_srv["trace_id"] != "0" * 32
    assert a_cli["trace_id"] == b_srv["trace_id"] == a_srv["trace_id"]
    assert a_cli["parent_span_id"] == a_srv["span_id"]
    assert b_srv["parent_span_id"] == a_cli["span_id"]


def test_invalid_traceparent_restarts_trace(topo, agent_factory):
    c, frontend, backend = chain(topo)
    agent = agent_factory("--pid", str(frontend.pid), "--pid", str(backend.pid))
    bad = [f"00-{TRACE.upper()}-{PARENT}-01",       # upper-case hex
           f"ff-{TRACE}-{PARENT}-01",               # version ff
           f"00-{'0' * 32}-{PARENT}-01",            # all-zero trace id
           f"00-{TRACE}-{'0' * 16}-01",             # all-zero parent id
           f"00-{TRACE}-{PARENT}-01-extra"]         # version 00 with more fields
    for header in bad:
        assert topo.curl(c, "http://10.210.1.2:8080/status/204",
                         "-H", f"traceparent: {header}", "-H", "tracestate: k=v") == "204"
    spans = agent.wait_spans(lambda s: len(s) >= len(bad))
    servers = by_kind(spans, "SERVER", "frontend")
    assert len(servers) == len(bad)
    for s in servers:
        assert s["trace_id"] != TRACE
        assert s["parent_span_id"] == ""
        assert s["trace_state"] == ""  # W3C: tracestate is dropped with a bad traceparent
        assert attr(s, "http.response.status_code") == 204
    assert len({s["trace_id"] for s in servers}) == len(bad)


def test_keepalive_requests_on_one_connection(topo, agent_factory):
    c, frontend, backend = chain(topo)
    agent = agent_factory("--pid", str(frontend.pid))
    # One curl, three requests on one kept-alive connection.
    # (each further URL gets its own -o, curl pairs them in order)
    r = topo.curl(c, "http://10.210.1.2:8080/status/503", "http://10.210.1.2:8080/status/200",
                  "-o", "/dev/null", "http://10.210.1.2:8080/status/404", "-o", "/dev/null")
    assert r == "200404503"
    spans = agent.wait_spans(lambda s: len(s) >= 3)
    servers = sorted(by_kind(spans, "SERVER"), key=lambda s: s["start_time_unix_nano"])
    assert [attr(s, "http.response.status_code") for s in servers] == [200, 404, 503]
    assert [attr(s, "url.path") for s in servers] == ["/status/200", "/status/404", "/status/503"]
    # 4xx is not a server error; 5xx is (semconv).
    assert [s["status"]["code"] for s in servers] == ["UNSET", "UNSET", "ERROR"]
    assert attr(servers[2], "error.type") == "503"
    assert len({attr(s, "client.port") for s in servers}) == 1  # one connection
    agent.stop()
    assert agent.final_stats["conns"] == "0"
