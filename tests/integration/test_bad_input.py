"""Bad input on traced connections: garbage and binary bytes on an HTTP port,
oversized heads, clients that hang up mid-response, servers killed
mid-request, callers without privileges, and connection churn.

Real servers (tests/integration/services/http_service.py) in network
namespaces, raw clients written in Python or curl in their own namespace.
Whatever arrives, the agent must stay up, keep tracing the good requests
correctly, report broken exchanges with the right error, invent no span,
and hold nothing once every connection is closed (final stats conns=0,
pending=0)."""
import json
import re
import subprocess
import textwrap
import time

import pytest

from conftest import PYTHON, attr, by_kind, hoptrace_bin

CLIENT_ADDR, SERVER_ADDR, PORT = "10.211.1.1", "10.211.1.2", 8080
BASE = f"http://{SERVER_ADDR}:{PORT}"
MS = 1_000_000

# Run inside the client namespace: small raw-socket helpers, then the test's
# own code. Results go back as one JSON line on stdout.
CLIENT_LIB = r'''
import json, random, socket, sys, time

def connect():
    s = socket.create_connection((HOST, PORT), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def drain(s):
    """Everything until the server closes; a reset counts as a close."""
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return out
        if not d:
            return out
        out += d

def head(s, buf=b""):
    """Reads one response head; returns (head, body bytes already read)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError(buf)
        buf += d
    h, _, rest = buf.partition(b"\r\n\r\n")
    return h, rest

def response(s):
    """One whole response with a Content-Length body; returns its status code."""
    h, body = head(s)
    lines = h.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += s.recv(65536)
    assert len(body) == length, (lines[0], len(body), length)
    return int(lines[0].split()[1])

def done(**results):
    print(json.dumps(results), flush=True)
'''


def client_program(code):
    return f"HOST, PORT = {SERVER_ADDR!r}, {PORT}\n" + CLIENT_LIB + textwrap.dedent(code)


def run_client(topo, ns, code, timeout=30):
    r = topo.python(ns, client_program(code), timeout=timeout)
    assert r.returncode == 0, f"client failed:\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def one_server(topo, name="websvc"):
    """Client namespace -> server namespace with one traced service."""
    c, s = topo.ns("c"), topo.ns("s")
    topo.link(c, CLIENT_ADDR, s, SERVER_ADDR)
    return c, s, topo.service(s, SERVER_ADDR, PORT, name)


def stop_clean(topo, agent, *ns_ports):
    """Waits until the traced processes closed every connection, stops the
    agent and checks that it was alive, exits 0 and holds nothing."""
    for ns, port in ns_ports:
        left = topo.wait_sockets_closed(ns, port)
        assert left == [], f"connections still open in {ns}: {left}"
    assert agent.proc.poll() is None, f"agent died:\n{agent.log_text()}"
    assert agent.stop() == 0, agent.log_text()
    st = agent.final_stats
    assert st is not None, f"no final stats:\n{agent.log_text()}"
    assert {k: st[k] for k in ("conns", "pending", "malformed", "kernel_lost")} == \
        {"conns": "0", "pending": "0", "malformed": "0", "kernel_lost": "0"}, st
    return st


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def request_read(ns, port):
    """True once a server socket on `port` in ns has received bytes and its
    process has read them all (the request is in the handler's hands)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tniH", "state", "established",
                          f"( sport = :{port} )"], capture_output=True, text=True).stdout
    m = re.match(r"\s*(\d+)\s.*?bytes_received:(\d+)", out, re.S)
    return bool(m) and m.group(1) == "0" and int(m.group(2)) > 0


def dur(span):
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def servers_by_path(spans):
    return {attr(s, "url.path"): s for s in by_kind(spans, "SERVER")}


# ---------------------------------------------------------------------------


def test_garbage_on_http_port_is_ignored_and_good_requests_still_traced(topo, agent_factory):
    """Binary bytes, a TLS-looking hello, non-HTTP text, garbage after a good
    request on a kept-alive connection, a 'GET ' followed by binary and a
    request line cut short by a hang-up: no span is made up, the good
    request before the garbage keeps its span, the garbage's answer is
    counted as an orphan rather than paired with the wrong request, and
    later requests are traced normally."""
    c, s, srv = one_server(topo)
    agent = agent_factory("--pid", str(srv.pid))
    res = run_client(topo, c, r'''
        rnd = random.Random(20240611)
        out = {}

        # (a) binary: a TLS ClientHello record header, then random bytes.
        k = connect()
        k.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + rnd.randbytes(4096))
        k.shutdown(socket.SHUT_WR)
        out["a_reply_bytes"] = len(drain(k))
        k.close()

        # (b) text that is not HTTP.
        for i, text in enumerate([b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
                                  b"HELLO there, this is not HTTP at all\r\n\r\n"]):
            k = connect()
            k.sendall(text)
            k.shutdown(socket.SHUT_WR)
            drain(k)
            k.close()

        # (c) a valid request, its response, then on the same kept-alive
        # connection a valid request prefix whose header value is binary
        # garbage (NUL and other bytes no field value may hold, no CR/LF).
        k = connect()
        out["c_port"] = k.getsockname()[1]
        k.sendall(b"GET /status/201 HTTP/1.1\r\nHost: h\r\n\r\n")
        out["c_first"] = response(k)
        junk = bytes(b for b in rnd.randbytes(2048) if b not in b"\r\n")
        k.sendall(b"GET /status/202 HTTP/1.1\r\nHost: h\r\nX-Junk: \x00\x01" + junk + b"\r\n\r\n")
        k.shutdown(socket.SHUT_WR)
        out["c_second"] = drain(k)[:12].decode("latin-1")
        k.close()

        # (d) starts like a request (the kernel side follows it as HTTP), then
        # binary: no version, bytes no request-target may hold.
        k = connect()
        k.sendall(b"GET \x00\x01\x02\xfe\xff\x7f\x80\x81garbage\r\n\r\n")
        k.shutdown(socket.SHUT_WR)
        drain(k)
        k.close()

        # (e) a request line cut short by the client's hang-up.
        k = connect()
        k.sendall(b"GET /status/209 HTTP/1.")
        k.shutdown(socket.SHUT_WR)
        out["e_reply"] = drain(k)[:5].decode("latin-1")
        k.close()
        done(**out)
    ''')
    # What the server made of it (the premises of the assertions below).
    assert res["c_first"] == 201
    assert res["c_second"] == "HTTP/1.1 202"  # Python accepts the garbage head
    assert not res["e_reply"].startswith("HTTP/")  # an HTTP/0.9-style 400: body only

    assert topo.curl(c, f"{BASE}/work") == "200"
    agent.wait_spans(lambda sp: len(sp) >= 2)
    st = stop_clean(topo, agent, (s, PORT))

    spans = agent.spans()
    assert sorted(attr(x, "url.path") for x in spans) == ["/status/201", "/work"], spans
    got = servers_by_path(spans)
    first, normal = got["/status/201"], got["/work"]
    assert attr(first, "http.response.status_code") == 201  # not the garbage's 202
    assert attr(first, "client.port") == res["c_port"]
    assert first["status"]["code"] == "UNSET"
    assert attr(normal, "http.response.status_code") == 200
    assert attr(normal, "http.request.method") == "GET"
    assert attr(normal, "client.address") == CLIENT_ADDR
    assert normal["status"]["code"] == "UNSET"
    for x in spans:
        assert x["kind"] == "SERVER"
        assert attr(x, "error.type") is None
    # The 202 answered a head the parser rejected: dropped, and counted.
    assert st["orphan_responses"] == "1", st
    assert st["spans"] == "2" and st["spans_dropped"] == "0", st


def test_64k_header_line_rejected_by_server(topo, agent_factory):
    """A header line of 64 KiB (more than the agent buffers per head and
    captures per syscall): the server refuses it with 431 and hangs up; the
    agent reports that exchange with the status curl saw, marks the head as
    truncated, and traces the next request normally."""
    c, s, srv = one_server(topo)
    agent = agent_factory("--pid", str(srv.pid))
    big = subprocess.run(["ip", "netns", "exec", c, "curl", "-s", "-o", "/dev/null",
                          "-w", "%{http_code}", "-m", "20", "-H", "X-Big: " + "a" * 65536,
                          f"{BASE}/status/200"], capture_output=True, text=True)
    # Python's http.server allows header lines of at most 65536 bytes.
    assert big.stdout == "431", (big.stdout, big.stderr)
    assert topo.curl(c, f"{BASE}/work") == "200"
    agent.wait_spans(lambda sp: len(sp) >= 2)
    stop_clean(topo, agent, (s, PORT))

    spans = agent.spans()
    assert len(spans) == 2, spans
    got = servers_by_path(spans)
    rejected, normal = got["/status/200"], got["/work"]
    assert attr(rejected, "http.response.status_code") == int(big.stdout)
    assert attr(rejected, "hoptrace.http.head_truncated") is True
    assert rejected["status"]["code"] == "UNSET"  # 4xx is not a server error
    assert attr(rejected, "http.request.method") == "GET"
    assert attr(normal, "http.response.status_code") == 200
    assert attr(normal, "hoptrace.http.head_truncated") is None
    assert attr(normal, "user_agent.original").startswith("curl/")
    assert normal["status"]["code"] == "UNSET"


def test_oversized_head_then_keepalive_requests_on_same_connection(topo, agent_factory):
    """A ~90 KB head the server accepts (three 30000-byte headers: more than
    the agent's 64 KiB head buffer), then two small requests on the same
    connection: the big one is reported with its status and head_truncated,
    and the agent resynchronises so the next two pair with their own
    responses."""
    c, s, srv = one_server(topo)
    agent = agent_factory("--pid", str(srv.pid))
    res = run_client(topo, c, r'''
        k = connect()
        port = k.getsockname()[1]
        bigs = b"".join(b"X-Big%d: %s\r\n" % (i, b"b" * 30000) for i in range(3))
        codes = []
        for req in [b"GET /status/203 HTTP/1.1\r\nHost: h\r\n" + bigs + b"\r\n",
                    b"GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\n",
                    b"GET /status/206 HTTP/1.1\r\nHost: h\r\n\r\n"]:
            k.sendall(req)
            codes.append(response(k))
        k.close()
        done(port=port, codes=codes)
    ''')
    assert res["codes"] == [203, 204, 206]
    agent.wait_spans(lambda sp: len(sp) >= 3)
    stop_clean(topo, agent, (s, PORT))

    spans = sorted(agent.spans(), key=lambda x: x["start_time_unix_nano"])
    assert [attr(x, "url.path") for x in spans] == ["/status/203", "/status/204", "/status/206"]
    assert [attr(x, "http.response.status_code") for x in spans] == [203, 204, 206]
    assert [attr(x, "hoptrace.http.head_truncated") for x in spans] == [True, None, None]
    assert {attr(x, "client.port") for x in spans} == {res["port"]}


def test_client_disconnect_mid_response_is_response_incomplete(topo, agent_factory):
    """Clients that hang up while /slowbody (1 MiB, ~1.3 s) is still being
    sent: one reads the head and some body then closes, curl gives up on
    the announced size at once. Each exchange is an ERROR span with
    error.type response_incomplete, the 200 the server had sent, and an end
    at the hang-up, not when the body would have finished."""
    c, s, srv = one_server(topo)
    agent = agent_factory("--pid", str(srv.pid))
    res = run_client(topo, c, r'''
        k = connect()
        port = k.getsockname()[1]
        k.sendall(b"GET /slowbody?from=socket HTTP/1.1\r\nHost: h\r\n\r\n")
        h, body = head(k)
        while len(body) < 40000:
            body += k.recv(65536)
        k.close()  # unread data: the server's next write meets a reset
        done(port=port, status=h.split(b"\r\n")[0].decode(), body=len(body))
    ''')
    assert res["status"] == "HTTP/1.1 200 OK"
    # curl refuses the announced 1 MiB and closes right after the head.
    code = topo.curl(c, f"{BASE}/slowbody?from=curl", "--max-filesize", "1000")
    assert code == "200"
    agent.wait_spans(lambda sp: len(sp) >= 2)
    stop_clean(topo, agent, (s, PORT))

    spans = agent.spans()
    assert len(spans) == 2, spans
    for x in spans:
        assert x["kind"] == "SERVER"
        assert attr(x, "url.path") == "/slowbody"
        assert x["status"]["code"] == "ERROR"
        assert attr(x, "error.type") == "response_incomplete"
        assert x["status"]["message"] == "connection ended before the response was complete"
        assert attr(x, "http.response.status_code") == 200
        # 64 writes with 20 ms pauses would take >= 1.28 s.
        assert dur(x) < 1000 * MS, dur(x)
    assert res["port"] in {attr(x, "client.port") for x in spans}


def test_server_killed_mid_request(topo, agent_factory):
    """client -> A -> B, B SIGKILLed while it sleeps in the handler: B's
    span ends at its death with error.type process_exit, A's call to B is a
    CLIENT span without response (no_response), A answers 502 and its
    SERVER span is an ERROR; all three stay one trace with correct parents."""
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, CLIENT_ADDR, a, SERVER_ADDR)
    topo.link(a, "10.211.2.1", b, "10.211.2.2")
    backend = topo.service(b, "10.211.2.2", 9090, "backend", sleep_ms=3000)
    frontend = topo.service(a, SERVER_ADDR, PORT, "frontend", downstream="http://10.211.2.2:9090")
    agent = agent_factory("--pid", str(frontend.pid), "--pid", str(backend.pid))

    curl = topo.start(c, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "20",
                          f"{BASE}/work"])
    # Kill B (our own child, by pid) once its handler has read the request.
    assert wait_for(lambda: request_read(b, 9090)), "B never read a request"
    assert backend.poll() is None, "backend ended before the kill"
    killed_ns = time.time_ns()
    backend.kill()
    backend.wait(timeout=10)
    out, _ = curl.communicate(timeout=20)
    assert out == b"502"

    agent.wait_spans(lambda sp: len(sp) >= 3)
    stop_clean(topo, agent, (a, PORT), (a, 9090))
    spans = agent.spans()
    assert len(spans) == 3, spans
    [a_srv] = by_kind(spans, "SERVER", "frontend")
    [a_cli] = by_kind(spans, "CLIENT", "frontend")
    [b_srv] = by_kind(spans, "SERVER", "backend")

    assert b_srv["status"]["code"] == "ERROR"
    assert attr(b_srv, "error.type") == "process_exit"
    assert "process_exit" in b_srv["status"]["message"]
    assert attr(b_srv, "http.response.status_code") is None
    assert attr(b_srv, "url.path") == "/work"
    # Ends at the kill, not after the 3 s sleep.
    assert abs(b_srv["end_time_unix_nano"] - killed_ns) < 300 * MS

    assert a_cli["status"]["code"] == "ERROR"
    assert attr(a_cli, "error.type") == "no_response"
    assert attr(a_cli, "http.response.status_code") is None
    assert attr(a_cli, "url.full") == "http://10.211.2.2:9090/work"

    assert a_srv["status"]["code"] == "ERROR"
    assert attr(a_srv, "http.response.status_code") == 502
    assert attr(a_srv, "error.type") == "502"

    assert {x["trace_id"] for x in spans} == {a_srv["trace_id"]}
    assert a_srv["parent_span_id"] == ""
    assert a_cli["parent_span_id"] == a_srv["span_id"]
    assert b_srv["parent_span_id"] == a_cli["span_id"]
    assert a_srv["start_time_unix_nano"] <= a_cli["start_time_unix_nano"]
    assert a_cli["end_time_unix_nano"] <= a_srv["end_time_unix_nano"]


def _run_hoptrace(prefix, *args):
    return subprocess.run(prefix + [hoptrace_bin()] + list(args), capture_output=True,
                          text=True, timeout=30, cwd="/")


NO_CAPS = ["--inh-caps=-all", "--bounding-set=-all"]


@pytest.mark.parametrize("who", [
    pytest.param(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + NO_CAPS,
                 id="nobody"),
    pytest.param(["setpriv"] + NO_CAPS, id="root-without-capabilities"),
])
def test_missing_privileges_is_one_clear_line(who):
    """Without CAP_BPF & co. the agent exits 2 with one log line saying
    what is missing and how to fix it (no libbpf noise, no stack)."""
    r = _run_hoptrace(who, "run", "--pid", "1")
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert " error " in lines[0]
    assert "needs CAP_BPF" in lines[0] and "CAP_PERFMON" in lines[0]
    assert "sudo" in lines[0]


def test_run_without_selection_is_one_clear_line():
    """`hoptrace run` with nothing selected refuses to start (exit 2), in one
    line naming the options that select."""
    r = _run_hoptrace([], "run")
    assert r.returncode == 2, r
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert " error " in lines[0] and "nothing selected" in lines[0]
    for opt in ("--pid", "--exe", "--port", "--all"):
        assert opt in lines[0]


def test_many_short_connections(topo, agent_factory):
    """200 connections opened, used once and closed in quick succession:
    exactly 200 SERVER spans, one per connection (client ports match), each
    its own trace, nothing lost in the kernel, nothing left tracked."""
    n = 200
    c, s, srv = one_server(topo)
    agent = agent_factory("--pid", str(srv.pid))
    res = run_client(topo, c, r'''
        ports, codes = [], set()
        for i in range(%d):
            k = connect()
            ports.append(k.getsockname()[1])
            k.sendall(b"GET /status/200?i=%%d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" %% i)
            codes.add(response(k))
            k.close()
        done(ports=ports, codes=sorted(codes))
    ''' % n)
    assert res["codes"] == [200] and len(res["ports"]) == n
    agent.wait_spans(lambda sp: len(sp) >= n)
    st = stop_clean(topo, agent, (s, PORT))

    spans = agent.spans()
    assert len(spans) == n
    assert all(x["kind"] == "SERVER" for x in spans)
    assert all(attr(x, "url.path") == "/status/200" for x in spans)
    assert all(attr(x, "http.response.status_code") == 200 for x in spans)
    assert sorted(attr(x, "client.port") for x in spans) == sorted(res["ports"])
    assert len({x["trace_id"] for x in spans}) == n
    assert st["spans"] == str(n) and st["spans_exported"] == str(n), st
    assert st["spans_dropped"] == "0" and st["orphan_responses"] == "0", st


def test_request_whose_first_segment_is_one_byte(topo, agent_factory):
    """A client whose first segment is a single byte (slow link, byte-wise
    writer), read by the server on its own: that request and every later
    request on the kept-alive connection must still be traced."""
    c, s, srv = one_server(topo)
    agent = agent_factory("--pid", str(srv.pid))
    client = topo.start(c, [PYTHON, "-c", client_program(r'''
        k = connect()
        k.sendall(b"G")
        print("sent", flush=True)
        sys.stdin.readline()
        k.sendall(b"ET /status/207 HTTP/1.1\r\nHost: h\r\n\r\n")
        codes = [response(k)]
        k.sendall(b"GET /status/208 HTTP/1.1\r\nHost: h\r\n\r\n")
        codes.append(response(k))
        k.close()
        done(codes=codes)
    ''')], stdin=subprocess.PIPE)
    assert client.stdout.readline() == b"sent\n"
    # The rest goes only once the server has read the first byte by itself.
    assert wait_for(lambda: request_read(s, PORT)), "server never read the first byte"
    out, _ = client.communicate(b"go\n", timeout=20)
    assert json.loads(out.decode().splitlines()[-1])["codes"] == [207, 208]
    agent.wait_spans(lambda sp: len(sp) >= 2, timeout=2)
    stop_clean(topo, agent, (s, PORT))
    spans = sorted(agent.spans(), key=lambda x: x["start_time_unix_nano"])
    assert [attr(x, "http.response.status_code") for x in spans] == [207, 208]


def test_peeked_bytes_are_read_once(topo, agent_factory):
    """A traced client that peeks at a response before reading it
    (recv/recvmsg with MSG_PEEK, as curl does to check that a reused
    connection is alive): the peeked bytes come again in the real read, so
    the agent must not take them twice. Every response is traced whole."""
    c, s, _ = one_server(topo)
    client = topo.start(c, [PYTHON, "-c", client_program(r'''
        import select
        print("ready", flush=True)
        sys.stdin.readline()
        k = connect()
        codes, peeked = [], []
        for how in ("recv", "recvmsg", "recv"):
            k.sendall(b"GET /status/203 HTTP/1.1\r\nHost: h\r\n\r\n")
            select.select([k], [], [], 10)
            if how == "recv":
                peeked.append(k.recv(5, socket.MSG_PEEK).decode())
            else:
                peeked.append(k.recvmsg(5, 0, socket.MSG_PEEK)[0].decode())
            codes.append(response(k))
        k.close()
        done(codes=codes, peeked=peeked)
    ''')], stdin=subprocess.PIPE)
    assert client.stdout.readline() == b"ready\n"
    agent = agent_factory("--pid", str(client.pid))
    out, _ = client.communicate(b"go\n", timeout=20)
    assert json.loads(out.decode().splitlines()[-1]) == {"codes": [203] * 3,
                                                        "peeked": ["HTTP/"] * 3}
    agent.wait_spans(lambda sp: len(sp) >= 3, timeout=5)
    st = stop_clean(topo, agent, (s, PORT))
    spans = agent.spans()
    assert [(x["kind"], attr(x, "http.response.status_code")) for x in spans] == \
        [("CLIENT", 203)] * 3
    assert st["orphan_responses"] == "0" and st["resyncs"] == "0", st
