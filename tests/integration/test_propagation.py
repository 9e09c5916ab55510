"""Black-box context propagation: services nobody instrumented, one connected
trace. The kernel decides each server span's context from the request head
it reads, inserts a traceparent into each request the serving thread writes
(sockops + sk_msg, only for processes in the test's own cgroup), and the
agent reports spans with exactly the ids that went over the wire. Every test
checks both: the spans, and the raw heads each service received."""
import re
import subprocess

import pytest

from conftest import by_kind, attr, require_propagation
from propagation_util import (TestCgroup, check_one_hop, heads, header_values, nginx_proxy, node_service,
                              one_traceparent, py_service, wait_heads)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def cg(topo):
    require_propagation()
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


def svc(spans, kind, name):
    return by_kind(spans, kind, name)


def test_thread_per_request_python_to_python(topo, cg, agent_factory):
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.211.1.1", a, "10.211.1.2")
    topo.link(a, "10.211.2.1", b, "10.211.2.2")
    leaf, leaf_log = py_service(topo, cg, b, "10.211.2.2", 9090, "leaf")
    front, front_log = py_service(topo, cg, a, "10.211.1.2", 8080, "front",
                                  downstream=["http://10.211.2.2:9090"])
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path))
    assert topo.curl(c, "http://10.211.1.2:8080/work") == "200"
    spans = agent.wait_spans(lambda s: len(s) >= 3)
    assert len(spans) == 3, spans
    [f_srv] = svc(spans, "SERVER", "front")
    [f_cli] = svc(spans, "CLIENT", "front")
    [l_srv] = svc(spans, "SERVER", "leaf")
    assert f_srv["parent_span_id"] == ""
    assert f_cli["trace_id"] == l_srv["trace_id"] == f_srv["trace_id"]
    assert f_cli["parent_span_id"] == f_srv["span_id"]
    assert l_srv["parent_span_id"] == f_cli["span_id"]

    # The bytes the leaf received: exactly one traceparent, naming the
    # front's CLIENT span; the front received none (curl sent none).
    [front_head] = heads(front_log)
    assert header_values(front_head, "traceparent") == []
    [leaf_head] = wait_heads(leaf_log, 1)
    trace, parent, flags = one_traceparent(leaf_head)
    assert (trace, parent, flags) == (f_srv["trace_id"], f_cli["span_id"], "01")
    assert header_values(leaf_head, "tracestate") == []
    # Inserted right after the request line, the rest as the client wrote it.
    lines = leaf_head.split("\r\n")
    assert lines[0] == "GET /work HTTP/1.1"
    assert lines[1].startswith("traceparent: 00-")
    assert lines[2].lower().startswith("host:")
    agent.stop()
    assert "injected=1 " in agent.log_text()


def chain4(topo, cg):
    """curl (c) -> nginx (n) -> Python front (a) -> Node mid (b) -> Python leaf (d)."""
    c, n, a, b, d = (topo.ns(x) for x in "cnabd")
    topo.link(c, "10.212.1.1", n, "10.212.1.2")
    topo.link(n, "10.212.2.1", a, "10.212.2.2")
    topo.link(a, "10.212.3.1", b, "10.212.3.2")
    topo.link(b, "10.212.4.1", d, "10.212.4.2")
    leaf, leaf_log = py_service(topo, cg, d, "10.212.4.2", 9000, "leaf")
    mid, mid_log = node_service(topo, cg, b, "10.212.3.2", 9100, "mid",
                                downstream="http://10.212.4.2:9000")
    front, front_log = py_service(topo, cg, a, "10.212.2.2", 9200, "front",
                                  downstream=["http://10.212.3.2:9100"])
    ngx, ngx_dir = nginx_proxy(topo, cg, n, "10.212.1.2", 8000, "http://10.212.2.2:9200")
    pids = [ngx.pid, *cg.extra_pids, front.pid, mid.pid, leaf.pid]
    logs = {"front": front_log, "mid": mid_log, "leaf": leaf_log}
    return c, pids, logs, ngx_dir


def nginx_received(ngx_dir):
    import json
    path = ngx_dir / "access.log"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def agent_for(agent_factory, pids, cg, *extra):
    args = []
    for p in pids:
        args += ["--pid", str(p)]
    return agent_factory(*args, "--propagation-cgroup", str(cg.path), *extra)


def chain_spans(spans):
    """The 7 spans of one request through chain4, by (service, kind)."""
    out = {}
    for s in spans:
        key = (s["resource"]["attributes"]["service.name"], s["kind"])
        assert key not in out, f"two {key} spans"
        out[key] = s
    return out


def check_chain_tree(sp, incoming_parent=""):
    order = [("nginx", "SERVER"), ("nginx", "CLIENT"), ("front", "SERVER"), ("front", "CLIENT"),
             ("mid", "SERVER"), ("mid", "CLIENT"), ("leaf", "SERVER")]
    assert sorted(sp) == sorted(order), sorted(sp)
    trace = sp[order[0]]["trace_id"]
    assert {s["trace_id"] for s in sp.values()} == {trace}
    assert len({s["span_id"] for s in sp.values()}) == 7
    assert sp[order[0]]["parent_span_id"] == incoming_parent
    for parent, child in zip(order, order[1:]):
        assert sp[child]["parent_span_id"] == sp[parent]["span_id"], (parent, child)
    return trace


def test_chain_nginx_python_node_without_header(topo, cg, agent_factory):
    c, pids, logs, ngx_dir = chain4(topo, cg)
    agent = agent_for(agent_factory, pids, cg)
    assert topo.curl(c, "http://10.212.1.2:8000/work") == "200"
    spans = agent.wait_spans(lambda s: len(s) >= 7)
    sp = chain_spans(spans)
    trace = check_chain_tree(sp)
    assert len(trace) == 32 and trace != TRACE

    # What each hop received: nginx nothing, then exactly one traceparent
    # naming the caller's CLIENT span.
    assert nginx_received(ngx_dir) == [{"traceparent": "", "tracestate": ""}]
    for svc_name, caller in (("front", "nginx"), ("mid", "front"), ("leaf", "mid")):
        [head] = wait_heads(logs[svc_name], 1)
        assert one_traceparent(head) == (trace, sp[(caller, "CLIENT")]["span_id"], "01"), svc_name
        assert header_values(head, "tracestate") == []


def test_chain_joins_incoming_traceparent_and_passes_tracestate(topo, cg, agent_factory):
    c, pids, logs, ngx_dir = chain4(topo, cg)
    agent = agent_for(agent_factory, pids, cg)
    state = "vendor=abc,other=1"
    assert topo.curl(c, "http://10.212.1.2:8000/work", "-H", f"traceparent: 00-{TRACE}-{PARENT}-01",
                     "-H", f"tracestate: {state}") == "200"
    spans = agent.wait_spans(lambda s: len(s) >= 7)
    sp = chain_spans(spans)
    assert check_chain_tree(sp, incoming_parent=PARENT) == TRACE
    assert all(s["trace_state"] == state for s in sp.values()), [s["trace_state"] for s in sp.values()]

    # nginx passes the caller's header on: it arrives at front untouched.
    assert nginx_received(ngx_dir) == [{"traceparent": f"00-{TRACE}-{PARENT}-01",
                                        "tracestate": state}]
    [front_head] = wait_heads(logs["front"], 1)
    assert header_values(front_head, "traceparent") == [f"00-{TRACE}-{PARENT}-01"]
    assert header_values(front_head, "tracestate") == [state]
    for svc_name, caller in (("mid", "front"), ("leaf", "mid")):
        [head] = wait_heads(logs[svc_name], 1)
        assert one_traceparent(head) == (TRACE, sp[(caller, "CLIENT")]["span_id"], "01")
        assert header_values(head, "tracestate") == [state]


BAD_TRACEPARENTS = [
    [f"00-{TRACE.upper()}-{PARENT}-01"],     # upper-case hex
    [f"ff-{TRACE}-{PARENT}-01"],             # version ff
    [f"00-{'0' * 32}-{PARENT}-01"],          # all-zero trace id
    [f"00-{TRACE}-{'0' * 16}-01"],           # all-zero parent id
    [f"00-{TRACE}-{PARENT}-01-extra"],       # version 00 with more fields
    [f"00-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01"],  # repeated
]


def group_by_trace(spans):
    traces = {}
    for s in spans:
        traces.setdefault(s["trace_id"], []).append(s)
    return traces


def test_chain_invalid_incoming_traceparent_restarts_the_whole_chain(topo, cg, agent_factory):
    c, pids, logs, ngx_dir = chain4(topo, cg)
    agent = agent_for(agent_factory, pids, cg)
    for values in BAD_TRACEPARENTS:
        args = []
        for v in values:
            args += ["-H", f"traceparent: {v}"]
        assert topo.curl(c, "http://10.212.1.2:8000/work", *args, "-H", "tracestate: k=v") == "200"
    n = len(BAD_TRACEPARENTS)
    spans = agent.wait_spans(lambda s: len(s) >= 7 * n)
    traces = group_by_trace(spans)
    assert len(traces) == n and TRACE not in traces
    for trace, tspans in traces.items():
        sp = chain_spans(tspans)
        assert check_chain_tree(sp) == trace
        # W3C: tracestate is dropped with an invalid traceparent.
        assert all(s["trace_state"] == "" for s in tspans)

    # nginx got the bad headers and passed them on; the kernel replaced them
    # (and the tracestate that came with them) with one valid traceparent.
    got = nginx_received(ngx_dir)
    assert [g["traceparent"] for g in got] == [v[0] for v in BAD_TRACEPARENTS]
    front_heads = wait_heads(logs["front"], n)
    assert len(front_heads) == n
    by_trace = {}
    for head in front_heads:
        trace, parent, flags = one_traceparent(head)
        assert header_values(head, "tracestate") == []
        by_trace[trace] = parent
    for trace, tspans in traces.items():
        assert by_trace[trace] == chain_spans(tspans)[("nginx", "CLIENT")]["span_id"]
    agent.stop()
    assert f"invalid={n} " in agent.log_text()
    assert f"replaced={n} " in agent.log_text()  # in nginx's requests to front


def pair(topo, cg, sampler_args=(), leaf_in_cgroup=True, **front_kw):
    """curl/raw client (c) -> Python front (a) -> Python leaf (b)."""
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.215.1.1", a, "10.215.1.2")
    topo.link(a, "10.215.2.1", b, "10.215.2.2")
    leaf, leaf_log = py_service(topo, cg, b, "10.215.2.2", 9090, "leaf")
    front, front_log = py_service(topo, cg, a, "10.215.1.2", 8080, "front",
                                  downstream=["http://10.215.2.2:9090"], **front_kw)
    return c, front, leaf, front_log, leaf_log


RAW_CLIENT = r"""
import socket, sys, time
s = socket.create_connection(("10.215.1.2", 8080))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for piece in sys.argv[1:]:
    s.sendall(piece.encode().decode("unicode_escape").encode("latin-1"))
    time.sleep(0.15)  # separate reads on the server
data = b""
while b"\r\n\r\n" not in data:
    data += s.recv(65536)
print(data.split(b"\r\n", 1)[0].decode())
"""


def raw_request(topo, c, *pieces):
    r = subprocess.run(["ip", "netns", "exec", c, "/usr/bin/python3", "-c", RAW_CLIENT,
                        *pieces], capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def test_traceparent_split_across_reads_and_deep_in_the_head(topo, cg, agent_factory):
    c, front, leaf, front_log, leaf_log = pair(topo, cg)
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path))
    filler = "".join(f"X-Filler-{i}: {'v' * 60}\\r\\n" for i in range(30))  # ~2.3 KiB first
    tp = f"00-{TRACE}-{PARENT}-01"
    # The name cut in two, the value cut in two, tracestate in two fields.
    status = raw_request(topo, c, "GET /work HTTP/1.1\\r\\nHost: f\\r\\n" + filler + "Trace",
                         "Parent:  " + tp[:20], tp[20:] + " \\r\\ntracestate: a=1\\r\\n",
                         "TRACESTATE: b=2\\r\\n\\r\\n")
    assert status == "HTTP/1.1 200 OK"
    spans = agent.wait_spans(lambda s: len(s) >= 3)
    [f_srv] = svc(spans, "SERVER", "front")
    [f_cli] = svc(spans, "CLIENT", "front")
    [l_srv] = svc(spans, "SERVER", "leaf")
    assert (f_srv["trace_id"], f_srv["parent_span_id"]) == (TRACE, PARENT)
    assert f_srv["trace_state"] == "a=1,b=2"
    assert l_srv["parent_span_id"] == f_cli["span_id"]
    [leaf_head] = wait_heads(leaf_log, 1)
    assert one_traceparent(leaf_head) == (TRACE, f_cli["span_id"], "01")
    assert header_values(leaf_head, "tracestate") == ["a=1,b=2"]


def test_invalid_or_too_long_tracestate_is_dropped_traceparent_kept(topo, cg, agent_factory):
    c, front, leaf, front_log, leaf_log = pair(topo, cg)
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path))
    bad_states = ["Upper=1", "@a=1", "k=", ",".join(f"k{i}=v" for i in range(33)),
                  "a=" + "x" * 257, ",".join(f"key{i}={'v' * 40}" for i in range(12))]  # > 512
    for st in bad_states:
        assert topo.curl(c, "http://10.215.1.2:8080/work",
                         "-H", f"traceparent: 00-{TRACE}-{PARENT}-01",
                         "-H", f"tracestate: {st}") == "200"
    spans = agent.wait_spans(lambda s: len(s) >= 3 * len(bad_states))
    servers = svc(spans, "SERVER", "front")
    assert len(servers) == len(bad_states)
    assert all(s["trace_id"] == TRACE and s["parent_span_id"] == PARENT for s in servers)
    assert all(s["trace_state"] == "" for s in spans)
    for head in wait_heads(leaf_log, len(bad_states)):
        assert one_traceparent(head)[0] == TRACE
        assert header_values(head, "tracestate") == []


def test_kernel_samples_as_the_agent_does(topo, cg, agent_factory):
    c, front, leaf, front_log, leaf_log = pair(topo, cg)
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path), "--sampler", "always_off")
    assert topo.curl(c, "http://10.215.1.2:8080/work") == "200"
    # parentbased_always_on would follow the caller: the default is tested above;
    # always_off records nothing and says so on the wire.
    assert topo.curl(c, "http://10.215.1.2:8080/work",
                     "-H", f"traceparent: 00-{TRACE}-{PARENT}-01") == "200"
    heads_ = wait_heads(leaf_log, 2)
    assert [one_traceparent(h)[2] for h in heads_] == ["00", "00"]
    assert one_traceparent(heads_[1])[0] == TRACE
    agent.stop()
    assert agent.spans() == []


def test_no_propagation_leaves_the_wire_alone(topo, cg, agent_factory):
    c, front, leaf, front_log, leaf_log = pair(topo, cg)
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path), "--no-propagation")
    assert topo.curl(c, "http://10.215.1.2:8080/work") == "200"
    [head] = wait_heads(leaf_log, 1)
    assert header_values(head, "traceparent") == []
    # Read-only tracing still links the two on this host by the 4-tuple.
    spans = agent.wait_spans(lambda s: len(s) >= 3)
    [f_cli] = svc(spans, "CLIENT", "front")
    [l_srv] = svc(spans, "SERVER", "leaf")
    assert l_srv["parent_span_id"] == f_cli["span_id"]
    agent.stop()
    assert "propagation (final)" not in agent.log_text()


def test_config_file_names_the_cgroup_and_can_switch_it_off(topo, cg, agent_factory, tmp_path):
    c, front, leaf, front_log, leaf_log = pair(topo, cg)
    on = tmp_path / "on.yaml"
    on.write_text(f"propagation:\n  cgroup: {cg.path}\n")
    agent = agent_factory("--config", str(on), "--pid", str(front.pid), "--pid", str(leaf.pid))
    assert topo.curl(c, "http://10.215.1.2:8080/work") == "200"
    [head] = wait_heads(leaf_log, 1)
    one_traceparent(head)
    agent.stop()
    off = tmp_path / "off.yaml"
    off.write_text(f"propagation:\n  cgroup: {cg.path}\n  enabled: false\n")
    agent2 = agent_factory("--config", str(off), "--pid", str(front.pid), "--pid", str(leaf.pid),
                           name="off")
    assert topo.curl(c, "http://10.215.1.2:8080/work") == "200"
    heads_ = wait_heads(leaf_log, 2)
    assert header_values(heads_[1], "traceparent") == []
    agent2.stop()


def test_only_selected_processes_in_the_cgroup_are_touched(topo, cg, agent_factory):
    """front is in the cgroup but not selected; other is selected but outside
    the cgroup: neither's requests change, and front's sockets never enter
    the sockhash."""
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.216.1.1", a, "10.216.1.2")
    topo.link(a, "10.216.2.1", b, "10.216.2.2")
    leaf, leaf_log = py_service(topo, cg, b, "10.216.2.2", 9090, "leaf")
    front, _ = py_service(topo, cg, a, "10.216.1.2", 8080, "front",
                          downstream=["http://10.216.2.2:9090"])
    outsider_cg = type("NoCgroup", (), {"preexec": lambda self: None})()
    other, _ = py_service(topo, outsider_cg, a, "10.216.1.2", 8081, "other",
                          downstream=["http://10.216.2.2:9090"])
    agent = agent_factory("--pid", str(other.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path))
    assert topo.curl(c, "http://10.216.1.2:8080/work") == "200"
    assert topo.curl(c, "http://10.216.1.2:8081/work") == "200"
    for head in wait_heads(leaf_log, 2):
        assert header_values(head, "traceparent") == []
    agent.stop()
    m = re.search(r"propagation \(final\): (.*)", agent.log_text())
    st = dict(kv.split("=") for kv in m.group(1).split())
    assert st["sockets"] == "0" and st["injected"] == "0", st


def test_ipv6_chain(topo, cg, agent_factory):
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "fd00:218:1::1", a, "fd00:218:1::2", prefix="64 nodad")
    topo.link(a, "fd00:218:2::1", b, "fd00:218:2::2", prefix="64 nodad")
    leaf, leaf_log = py_service(topo, cg, b, "fd00:218:2::2", 9090, "leaf")
    front, _ = py_service(topo, cg, a, "fd00:218:1::2", 8080, "front",
                          downstream=["http://[fd00:218:2::2]:9090"])
    agent = agent_factory("--pid", str(front.pid), "--pid", str(leaf.pid),
                          "--propagation-cgroup", str(cg.path))
    assert topo.curl(c, "http://[fd00:218:1::2]:8080/work", "-g") == "200"
    spans = agent.wait_spans(lambda s: len(s) >= 3)
    [f_srv] = svc(spans, "SERVER", "front")
    [f_cli] = svc(spans, "CLIENT", "front")
    [l_srv] = svc(spans, "SERVER", "leaf")
    assert f_cli["parent_span_id"] == f_srv["span_id"]
    assert l_srv["parent_span_id"] == f_cli["span_id"]
    [head] = wait_heads(leaf_log, 1)
    assert one_traceparent(head) == (f_srv["trace_id"], f_cli["span_id"], "01")


@pytest.mark.parametrize("how", ["port", "exe"])
def test_selection_by_port_or_name_reaches_propagation(topo, cg, agent_factory, how):
    # Ports and names only this test uses: --port and --exe select whatever
    # process matches on the host (read-only tracing; injection stays in the
    # test's cgroup), and other tests may run alongside.
    front_name, leaf_name = f"front{topo.tag}", f"leaf{topo.tag}"
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.219.1.1", a, "10.219.1.2")
    topo.link(a, "10.219.2.1", b, "10.219.2.2")
    leaf, leaf_log = py_service(topo, cg, b, "10.219.2.2", 19431, leaf_name)
    front, _ = py_service(topo, cg, a, "10.219.1.2", 18431, front_name,
                          downstream=["http://10.219.2.2:19431"])
    if how == "port":  # the front's incoming and outgoing connections, by port
        agent = agent_factory("--port", "18431", "--port", "19431",
                              "--propagation-cgroup", str(cg.path))
    else:  # by the service names derived from the scripts' names
        agent = agent_factory("--exe", front_name, "--exe", leaf_name,
                              "--propagation-cgroup", str(cg.path))
    assert topo.curl(c, "http://10.219.1.2:18431/work") == "200"
    spans, trace = check_one_hop(agent, leaf_log, front_name, leaf_name)
    [f_srv] = svc(spans, "SERVER", front_name)
    if how == "port":
        # curl's own connection matches --port too: it is traced (not
        # injected: not in the cgroup), so on this host the front joins
        # curl's trace, and so does what the kernel sent on under its own id.
        [curl] = svc(spans, "CLIENT", "curl")
        assert f_srv["parent_span_id"] == curl["span_id"]
        assert f_srv["trace_id"] == curl["trace_id"] != trace
    else:
        assert f_srv["trace_id"] == trace
