"""Function probes (--probe): INTERNAL spans of the calls of named functions,
nested between the SERVER span a thread serves and the CLIENT spans it makes.

Real services, real uprobes: a C++ service the build makes
(services/shop.cc: handle -> validate -> query -> [backend call] -> render,
each sleeping a known time; /fail throws through render, query and validate)
and a Go net/http service from the pinned toolchain (tests/go/login:
handleLogin -> checkPassword -> [backend call]; /panic panics through
mustFail). The backend is services/http_service.py. Every service starts after
the agent, so the probes are attached at their exec.
"""
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import bpf_util
from conftest import PYTHON, SERVICES, attr, by_kind, hoptrace_bin, require_propagation
from propagation_util import TestCgroup, start_in

SHOP = os.environ.get("SHOP_BIN", "")
GO_LOGIN = os.environ.get("GO_LOGIN_BIN", "")
MS = 1_000_000

SHOP_PROBES = ["shop:Shop::handle", "shop:Shop::validate", "shop:Shop::query",
               "shop:Shop::rend*"]  # a glob, too


@pytest.fixture(autouse=True)
def built():
    if not (SHOP and Path(SHOP).exists() and GO_LOGIN and Path(GO_LOGIN).exists()):
        pytest.fail("SHOP_BIN / GO_LOGIN_BIN not built (run through ctest: integration.uprobes)")


def probe_args(probes):
    out = []
    for p in probes:
        out += ["--probe", p]
    return out


def backend(topo, ns, port, sleep_ms=5):
    return topo.service(ns, "127.0.0.1", port, "stock", sleep_ms=sleep_ms)


def wait_attached(agent, pid, where="", timeout=10):
    """Waits until the agent has attached probes in process pid (in a file
    whose name contains `where`): a request sent before would find some
    missing. At exec a program has not mapped its libraries yet: the
    exception probes in libstdc++ come a little later."""
    deadline = time.time() + timeout
    while not re.search(rf"probe: pid {pid}: .* attached in .*{re.escape(where)}",
                        agent.log_text()):
        assert time.time() < deadline, f"no probes attached in {pid}:\n{agent.log_text()}"
        time.sleep(0.05)


def start_shop(topo, ns, port, backend_port, agent=None):
    p = topo.start(ns, [SHOP, str(port), str(backend_port)])
    assert p.stdout.readline().strip() == b"listening"
    if agent:
        wait_attached(agent, p.pid, "shop")
        wait_attached(agent, p.pid, "libstdc++")
    return p


def dur(span):
    return span["end_time_unix_nano"] - span["start_time_unix_nano"]


def by_id(spans):
    return {s["span_id"]: s for s in spans}


def named(spans, name):
    return [s for s in spans if s["name"] == name]


def internal_chain(spans, leaf):
    """Names from leaf up through INTERNAL parents to the first non-INTERNAL span."""
    ids = by_id(spans)
    names = []
    s = leaf
    while s and s["kind"] == "INTERNAL":
        names.append(s["name"])
        s = ids.get(s["parent_span_id"])
    return names, s


def defined_at(source, pattern):
    """The line of `source` (under tests/) where `pattern` first occurs."""
    path = Path(__file__).resolve().parents[1] / source
    [line] = [i for i, l in enumerate(path.read_text().splitlines(), 1) if pattern in l][:1]
    return str(path), line


def test_cpp_request_gives_server_internal_chain_client(topo, agent_factory):
    ns = topo.ns("shop")
    agent = agent_factory(*probe_args(SHOP_PROBES), "--exe", "stock")  # the backend too
    backend(topo, ns, 9091, sleep_ms=5)
    shop = start_shop(topo, ns, 9090, 9091, agent)
    assert topo.curl(ns, "http://127.0.0.1:9090/order") == "200"
    spans = agent.wait_spans(lambda s: len(by_kind(s, "INTERNAL")) >= 4 and
                             len(by_kind(s, "SERVER", "shop")) >= 1 and
                             len(by_kind(s, "CLIENT", "shop")) >= 1 and
                             len(by_kind(s, "SERVER", "stock")) >= 1)
    shop_spans = [s for s in spans if s["resource"]["attributes"]["process.pid"] == shop.pid]
    [server] = by_kind(shop_spans, "SERVER")
    [client] = by_kind(shop_spans, "CLIENT")
    [handle] = named(shop_spans, "Shop::handle")
    [validate] = named(shop_spans, "Shop::validate")
    [query] = named(shop_spans, "Shop::query")
    [render] = named(shop_spans, "Shop::render")
    # SERVER -> handle -> validate -> query -> {CLIENT, render}
    assert handle["parent_span_id"] == server["span_id"]
    assert validate["parent_span_id"] == handle["span_id"]
    assert query["parent_span_id"] == validate["span_id"]
    assert render["parent_span_id"] == query["span_id"]
    assert client["parent_span_id"] == query["span_id"]
    for s in (handle, validate, query, render, client):
        assert s["trace_id"] == server["trace_id"]
        assert s["kind"] in ("INTERNAL", "CLIENT")
    for s in (handle, validate, query, render):
        assert s["kind"] == "INTERNAL"
        assert attr(s, "code.function.name") == s["name"]
        assert attr(s, "thread.id") == shop.pid  # one thread
        assert s["status"]["code"] == "UNSET"
    # Where each is defined, from the binary's DWARF (built with -g).
    for s, pattern in ((handle, "int handle("), (validate, "std::string validate("),
                       (query, "std::string query("), (render, "std::string render(")):
        path, line = defined_at("integration/services/shop.cc", pattern)
        assert (attr(s, "code.file.path"), attr(s, "code.line.number")) == (path, line), s["name"]
    # Durations: each at least its own sleep plus its callees, and nested in time.
    assert 4 * MS <= dur(render) < 200 * MS
    assert 5 * MS <= dur(client) < 300 * MS  # the backend sleeps 5 ms
    assert dur(query) >= 2 * MS + dur(client) + dur(render)
    assert dur(validate) >= 3 * MS + dur(query)
    assert dur(handle) >= 1 * MS + dur(validate)
    assert dur(server) >= dur(handle)
    for outer, inner in ((server, handle), (handle, validate), (validate, query),
                         (query, client), (query, render)):
        assert outer["start_time_unix_nano"] <= inner["start_time_unix_nano"]
        assert inner["end_time_unix_nano"] <= outer["end_time_unix_nano"]
    # The backend's SERVER span is the shop's CLIENT span's child (same host).
    [stock_server] = by_kind(spans, "SERVER", "stock")
    assert stock_server["parent_span_id"] == client["span_id"]


def test_cpp_exception_through_probed_frames_is_an_error_with_its_type(topo, agent_factory):
    ns = topo.ns("shopx")
    agent = agent_factory(*probe_args(SHOP_PROBES))
    backend(topo, ns, 9091, sleep_ms=1)
    shop = start_shop(topo, ns, 9090, 9091, agent)
    assert topo.curl(ns, "http://127.0.0.1:9090/fail") == "500"
    assert topo.curl(ns, "http://127.0.0.1:9090/order") == "200"  # still serving, unharmed
    spans = agent.wait_spans(lambda s: len(by_kind(s, "INTERNAL")) >= 8)
    shop_spans = [s for s in spans if s["resource"]["attributes"]["process.pid"] == shop.pid]
    servers = sorted(by_kind(shop_spans, "SERVER"), key=lambda s: s["start_time_unix_nano"])
    assert [attr(s, "http.response.status_code") for s in servers] == [500, 200]
    failed = [s for s in shop_spans if s["trace_id"] == servers[0]["trace_id"]]
    ok = [s for s in shop_spans if s["trace_id"] == servers[1]["trace_id"]]
    # The exception left render, query and validate; handle caught it.
    for name in ("Shop::render", "Shop::query", "Shop::validate"):
        [s] = named(failed, name)
        assert s["status"]["code"] == "ERROR", name
        assert s["status"]["message"] == "exception Shop::OutOfStock"
        assert attr(s, "error.type") == "Shop::OutOfStock"
        [event] = s["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "Shop::OutOfStock"
        assert event["time_unix_nano"] == s["end_time_unix_nano"]
    [render] = named(failed, "Shop::render")
    assert 4 * MS <= dur(render) < 200 * MS  # it slept, then threw
    names, top = internal_chain(failed, render)
    assert names == ["Shop::render", "Shop::query", "Shop::validate", "Shop::handle"]
    assert top["span_id"] == servers[0]["span_id"]
    [handle] = named(failed, "Shop::handle")
    assert handle["status"]["code"] == "UNSET"
    # The next request nests as before: nothing of the failed one is left open.
    [render_ok] = named(ok, "Shop::render")
    names, top = internal_chain(ok, render_ok)
    assert names == ["Shop::render", "Shop::query", "Shop::validate", "Shop::handle"]
    assert top["span_id"] == servers[1]["span_id"]
    assert all(s["status"]["code"] == "UNSET" for s in ok if s["kind"] == "INTERNAL")


def test_short_calls_are_counted_not_exported(topo, agent_factory):
    ns = topo.ns("shopt")
    # render sleeps 4 ms: under a 25 ms threshold (with room for a loaded
    # machine's late wake-ups); query waits for the backend's 50 ms: over it.
    agent = agent_factory(*probe_args(SHOP_PROBES), "--probe-min-duration-us", "25000")
    backend(topo, ns, 9091, sleep_ms=50)
    shop = start_shop(topo, ns, 9090, 9091, agent)
    for _ in range(3):
        assert topo.curl(ns, "http://127.0.0.1:9090/order") == "200"
    spans = agent.wait_spans(lambda s: len(by_kind(s, "INTERNAL")) >= 9)
    time.sleep(0.5)
    spans = agent.spans()
    shop_spans = [s for s in spans if s["resource"]["attributes"]["process.pid"] == shop.pid]
    assert sorted({s["name"] for s in by_kind(shop_spans, "INTERNAL")}) == [
        "Shop::handle", "Shop::query", "Shop::validate"]
    assert len(by_kind(shop_spans, "INTERNAL")) == 9
    agent.stop()
    m = re.search(r"probes \(final\): (.*)", agent.log_text())
    stats = dict(kv.split("=", 1) for kv in m.group(1).split())
    assert int(stats["calls"]) == 12
    assert int(stats["short"]) == 3  # the three renders
    assert int(stats["internal_spans"]) == 9


def test_go_request_gives_server_internal_chain(topo, agent_factory):
    ns = topo.ns("login")
    agent = agent_factory("--probe", "login:main.handleLogin", "--probe", "login:main.checkPassword",
                          "--probe", "login:main.mustFail", "--probe", "login:main.renderPage")
    backend(topo, ns, 9091, sleep_ms=5)
    login = topo.start(ns, [GO_LOGIN, "9090", "http://127.0.0.1:9091"])
    assert login.stdout.readline().strip() == b"ready"
    wait_attached(agent, login.pid)
    assert topo.curl(ns, "http://127.0.0.1:9090/login?user=alice") == "200"
    assert topo.curl(ns, "http://127.0.0.1:9090/panic?user=bob") == "500"
    spans = agent.wait_spans(lambda s: len(by_kind(s, "INTERNAL")) >= 5 and
                             len(by_kind(s, "SERVER", "login")) >= 2)
    mine = [s for s in spans if s["resource"]["attributes"]["process.pid"] == login.pid]
    servers = sorted(by_kind(mine, "SERVER"), key=lambda s: s["start_time_unix_nano"])
    assert [attr(s, "http.response.status_code") for s in servers] == [200, 500]
    ok = [s for s in mine if s["trace_id"] == servers[0]["trace_id"]]
    [handle] = named(ok, "main.handleLogin")
    [check] = named(ok, "main.checkPassword")
    assert handle["parent_span_id"] == servers[0]["span_id"]
    assert check["parent_span_id"] == handle["span_id"]
    assert attr(check, "hoptrace.go.g") == attr(handle, "hoptrace.go.g")  # one goroutine
    # renderPage's entry ran twice (runtime.morestack runs it again on the
    # grown stack): one call, one span, after checkPassword.
    [render] = named(ok, "main.renderPage")
    assert render["parent_span_id"] == handle["span_id"]
    assert render["status"]["code"] == "UNSET"
    assert render["start_time_unix_nano"] >= check["end_time_unix_nano"]
    # Where each is defined, from the Go binary's (compressed) DWARF.
    for s, pattern in ((handle, "func handleLogin("), (check, "func checkPassword(")):
        path, line = defined_at("go/login/main.go", pattern)
        assert (attr(s, "code.file.path"), attr(s, "code.line.number")) == (path, line), s["name"]
    assert 15 * MS <= dur(check) < 500 * MS
    assert dur(handle) >= 10 * MS + dur(check)
    assert dur(servers[0]) >= dur(handle)
    # The panic unwound mustFail; handleLogin's deferred recover returned normally.
    failed = [s for s in mine if s["trace_id"] == servers[1]["trace_id"]]
    [must] = named(failed, "main.mustFail")
    [handle2] = named(failed, "main.handleLogin")
    assert must["status"]["code"] == "ERROR"
    assert attr(must, "error.type") == "unwound"
    assert must["parent_span_id"] == handle2["span_id"]
    assert 5 * MS <= dur(must) < 500 * MS
    assert handle2["status"]["code"] == "UNSET"
    assert handle2["parent_span_id"] == servers[1]["span_id"]
    agent.stop()
    m = re.search(r"probes \(final\): (.*)", agent.log_text())
    stats = dict(kv.split("=", 1) for kv in m.group(1).split())
    assert int(stats["go_restarts"]) >= 1  # the path above was taken
    assert int(stats["internal_spans"]) == 5


def start_go_login_traced(topo, agent_factory, cg, ns, backend_sleep_ms):
    """The Go login service in cg (its backend beside it), traced with
    kernel contexts and both of its login functions probed."""
    backend(topo, ns, 9091, sleep_ms=backend_sleep_ms)
    login = start_in(topo, cg, ns, [GO_LOGIN, "9090", "http://127.0.0.1:9091"])
    assert login.stdout.readline().strip() == b"ready"
    agent = agent_factory("--propagation-cgroup", str(cg.path), "--pid", str(login.pid),
                          "--probe", "login:main.handleLogin",
                          "--probe", "login:main.checkPassword")
    wait_attached(agent, login.pid)
    return login, agent


def test_go_client_call_is_child_of_the_probed_call(topo, agent_factory):
    """The backend call made inside checkPassword is its child, though
    net/http's writeLoop goroutine writes it (woken by the handler's
    goroutine through a channel): with kernel contexts (propagation) the Go
    runtime model names both goroutines to the agent, which looks for open
    probed calls in each."""
    require_propagation()
    cg = TestCgroup()
    try:
        ns = topo.ns("loginc")
        login, agent = start_go_login_traced(topo, agent_factory, cg, ns, backend_sleep_ms=5)
        assert re.search(rf"go: following the goroutines of pid {login.pid}", agent.log_text())
        for user in ("alice", "carol"):
            assert topo.curl(ns, f"http://127.0.0.1:9090/login?user={user}") == "200"
        spans = agent.wait_spans(lambda s: len(by_kind(s, "CLIENT")) >= 2 and
                                 len(by_kind(s, "INTERNAL")) >= 4)
        mine = [s for s in spans if s["resource"]["attributes"]["process.pid"] == login.pid]
        servers = by_kind(mine, "SERVER")
        assert len(servers) == 2
        for server in servers:
            trace = [s for s in mine if s["trace_id"] == server["trace_id"]]
            [handle] = named(trace, "main.handleLogin")
            [check] = named(trace, "main.checkPassword")
            [client] = by_kind(trace, "CLIENT")
            assert handle["parent_span_id"] == server["span_id"]
            assert check["parent_span_id"] == handle["span_id"]
            assert client["parent_span_id"] == check["span_id"]
            assert attr(client, "url.full").startswith("http://127.0.0.1:9091/user?name=")
            assert check["start_time_unix_nano"] <= client["start_time_unix_nano"]
            assert client["end_time_unix_nano"] <= check["end_time_unix_nano"]
    finally:
        cg.remove(topo.procs)


def test_go_concurrent_requests_each_nest_their_own_calls(topo, agent_factory):
    """Eight logins at once: the Go runtime runs their handlers' goroutines
    on a few threads, each thread holding several requests in turn, so the
    thread a call starts on does not say which request it serves. Every
    request's handleLogin is still the child of its own SERVER span, and its
    checkPassword of that handleLogin: with kernel contexts the goroutine's
    request, as the kernel bound it, is the parent. The backend calls go
    out through net/http's pooled connections, whose writeLoop goroutine
    the kernel hands each request by the channel send that wakes it; one
    that is not parked when a handler sends (it takes the next request
    without sleeping) keeps the previous hand-off, so a call can land under
    another request's checkPassword (seen once here: 1 of 8; the README's
    concurrency table counts 0-5 wrong of 3072 for Go): each call is the
    child of some checkPassword, in its trace, as the kernel wrote it on
    the wire."""
    require_propagation()
    cg = TestCgroup()
    users = [f"user{i}" for i in range(8)]
    try:
        ns = topo.ns("loginp")
        login, agent = start_go_login_traced(topo, agent_factory, cg, ns, backend_sleep_ms=60)
        curls = [topo.start(ns, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "20",
                                 f"http://127.0.0.1:9090/login?user={u}"]) for u in users]
        assert [c.communicate(timeout=30)[0] for c in curls] == [b"200"] * len(users)
        spans = agent.wait_spans(lambda s: len(named(s, "main.checkPassword")) >= len(users) and
                                 len(by_kind(s, "CLIENT")) >= len(users))
        mine = [s for s in spans if s["resource"]["attributes"]["process.pid"] == login.pid]
        servers = by_kind(mine, "SERVER")
        assert len(servers) == len(users)
        # Query values are redacted in spans: each request's chain is told
        # apart by its links alone. A call nested under the wrong request
        # leaves one SERVER span with two handlers and another with none.
        for server in servers:
            [handle] = [s for s in named(mine, "main.handleLogin")
                        if s["parent_span_id"] == server["span_id"]]
            [check] = [s for s in named(mine, "main.checkPassword")
                       if s["parent_span_id"] == handle["span_id"]]
            assert server["trace_id"] == handle["trace_id"] == check["trace_id"]
            assert attr(check, "hoptrace.go.g") == attr(handle, "hoptrace.go.g")
            assert handle["start_time_unix_nano"] >= server["start_time_unix_nano"]
        checks = {s["span_id"]: s for s in named(mine, "main.checkPassword")}
        clients = by_kind(mine, "CLIENT")
        assert len(clients) == len(users)
        for client in clients:
            assert client["trace_id"] == checks[client["parent_span_id"]]["trace_id"]
    finally:
        cg.remove(topo.procs)


def entry_bytes_intact(pid, probe):
    """True when the process's text at the entry of every function the probe
    matches is what its file holds there: no breakpoint of a uprobe left.
    Where the entries are comes from `hoptrace check` (file + offset)."""
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(pid), "--probe", probe],
                       capture_output=True, text=True, timeout=30, check=True)
    entries = re.findall(r"^\s+\S+\s+(/\S+)\+0x([0-9a-f]+)\s", r.stdout, re.M)
    assert entries, r.stdout
    maps = [line.split() for line in Path(f"/proc/{pid}/maps").read_text().splitlines()]
    with open(f"/proc/{pid}/mem", "rb") as mem:
        for path, off in entries:
            off = int(off, 16)
            [addr] = [int(m[0].split("-")[0], 16) + off - int(m[2], 16) for m in maps
                      if len(m) >= 6 and m[5] == path and "x" in m[1] and
                      int(m[2], 16) <= off < int(m[2], 16) + int(m[0].split("-")[1], 16) -
                      int(m[0].split("-")[0], 16)]
            mem.seek(addr)
            with open(f"/proc/{pid}/root{path}", "rb") as f:
                f.seek(off)
                if mem.read(1) != f.read(1):
                    return False
    return True


def test_exit_while_a_call_is_open_leaves_nothing(topo, agent_factory):
    ns = topo.ns("shope")
    agent = agent_factory(*probe_args(SHOP_PROBES))
    backend(topo, ns, 9091, sleep_ms=3000)  # query waits for it
    shop = start_shop(topo, ns, 9090, 9091, agent)
    held = bpf_util.progs(agent.proc.pid)
    assert "hu_entry" in held.values() and "hu_return" in held.values()
    # While attached, the entries carry the breakpoint.
    assert not entry_bytes_intact(shop.pid, "shop:Shop::validate")
    curl = subprocess.Popen(["ip", "netns", "exec", ns, "curl", "-s", "-m", "10",
                             "http://127.0.0.1:9090/order"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # inside handle -> validate -> query, waiting for the backend
    shop.kill()
    shop.wait(timeout=5)
    curl.wait(timeout=15)
    time.sleep(1.0)
    spans = agent.spans()
    assert by_kind(spans, "INTERNAL") == []  # no call of the dead process was reported
    # A second shop: probes attach again, and its calls nest from scratch.
    shop2 = start_shop(topo, ns, 9092, 9093, agent)
    backend(topo, ns, 9093, sleep_ms=1)
    assert topo.curl(ns, "http://127.0.0.1:9092/order") == "200"
    spans = agent.wait_spans(lambda s: len(named(s, "Shop::render")) >= 1)
    [render] = named(spans, "Shop::render")
    names, top = internal_chain(spans, render)
    assert names == ["Shop::render", "Shop::query", "Shop::validate", "Shop::handle"]
    assert top["kind"] == "SERVER"
    assert render["resource"]["attributes"]["process.pid"] == shop2.pid
    agent.stop()
    # Nothing of ours stays in the kernel, nor in the process's text.
    assert not bpf_util.left_loaded("prog", held)
    for probe in SHOP_PROBES:
        assert entry_bytes_intact(shop2.pid, probe)
    assert topo.curl(ns, "http://127.0.0.1:9092/order") == "200"  # unharmed


def test_library_loaded_later_is_probed(tmp_path, agent_factory):
    """dlopen after the agent attached: the library's function is found by
    the rescan of the process's maps and its calls become spans."""
    exe, lib = os.environ["DLOPEN_BIN"], os.environ["DLOPEN_LIB"]
    p = subprocess.Popen([exe, "late", lib], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        agent = agent_factory("--pid", str(p.pid), "--probe", "libgreet.so:greet")
        assert "probe libgreet.so:greet matches no function" in agent.log_text()
        p.stdin.write(b"load\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == b"loaded"
        wait_attached(agent, p.pid, "libgreet.so")
        p.stdin.write(b"call\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == b"called"
        spans = agent.wait_spans(lambda s: len(named(s, "greet")) >= 1)
        [greet] = named(spans, "greet")
        assert greet["kind"] == "INTERNAL"
        assert greet["parent_span_id"] == ""  # no request around it: a trace of its own
        assert attr(greet, "hoptrace.code.file").endswith("libgreet.so")
        assert dur(greet) > 100_000
    finally:
        p.stdin.close()
        p.wait(timeout=10)


def test_check_lists_what_a_probe_matches(topo):
    ns = topo.ns("shopc")
    backend(topo, ns, 9091)
    shop = start_shop(topo, ns, 9090, 9091)
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(shop.pid), "--probe",
                        "shop:Shop::validate", "--probe", "shop:Shop::nothing_like_this"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr  # one spec matched nothing
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"pid {shop.pid} (shop): 1 function(s)")
    assert re.match(r"\s+Shop::validate\s+\S+/shop\+0x[0-9a-f]+\s+[1-9]\d* return site\(s\)",
                    lines[1]), lines[1]
    assert "warning: shop:Shop::nothing_like_this matched no function" in r.stdout
    r = subprocess.run([hoptrace_bin(), "check", "--pid", str(shop.pid), "--probe",
                        "shop:Shop::*"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("Shop::handle", "Shop::validate", "Shop::query", "Shop::render"):
        assert name in r.stdout


def test_a_probe_matching_nothing_is_a_warning(topo, agent_factory):
    agent = agent_factory("--probe", "shop:Shop::nothing_like_this", "--pid", str(os.getpid()))
    assert ("probe shop:Shop::nothing_like_this matches no function in any traced process"
            in agent.log_text())


def test_client_parent_is_exact_when_the_agent_reads_late(topo, agent_factory):
    """The agent reads a thread's open calls when it handles the request's
    write, which can be long after: here it is stopped for the whole request,
    so every probed call has returned by then. The CLIENT span's parent is
    still the call that was open when the request was written (query), not
    whatever the thread runs when the agent looks."""
    ns = topo.ns("shop")
    agent = agent_factory(*probe_args(SHOP_PROBES))
    backend(topo, ns, 9091, sleep_ms=5)
    shop = start_shop(topo, ns, 9090, 9091, agent)
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        assert topo.curl(ns, "http://127.0.0.1:9090/order") == "200"
        time.sleep(0.2)
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    spans = agent.wait_spans(lambda s: len(by_kind(s, "INTERNAL")) >= 4 and
                             len(by_kind(s, "CLIENT", "shop")) >= 1)
    mine = [s for s in spans if s["resource"]["attributes"]["process.pid"] == shop.pid]
    [server] = by_kind(mine, "SERVER")
    [client] = by_kind(mine, "CLIENT")
    [query] = named(mine, "Shop::query")
    [handle] = named(mine, "Shop::handle")
    assert handle["parent_span_id"] == server["span_id"]
    assert client["parent_span_id"] == query["span_id"]
    assert client["trace_id"] == query["trace_id"] == server["trace_id"]
