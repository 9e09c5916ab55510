"""Which processes are traced: --exe (also for processes started after the
agent), --port, and children of a selected pid. Only the selected ones."""
import os
import signal
import subprocess
import time

import bpf_util
from conftest import PYTHON, attr, by_kind, hoptrace_bin


def two_services(topo):
    c, s = topo.ns("c"), topo.ns("s")
    topo.link(c, "10.213.1.1", s, "10.213.1.2")
    return c, s


def test_exe_selects_processes_started_later_and_only_those(topo, agent_factory):
    c, s = two_services(topo)
    agent = agent_factory("--exe", "chosen")  # matches the service name "chosen"
    topo.service(s, "10.213.1.2", 8080, "chosen")
    topo.service(s, "10.213.1.2", 8081, "ignored")
    time.sleep(0.3)  # the exec event travels to the agent
    assert topo.curl(c, "http://10.213.1.2:8080/status/201") == "201"
    assert topo.curl(c, "http://10.213.1.2:8081/status/202") == "202"
    spans = agent.wait_spans(lambda s: len(s) >= 1)
    time.sleep(0.5)
    spans = agent.spans()
    assert [attr(x, "http.response.status_code") for x in spans] == [201]
    assert spans[0]["resource"]["attributes"]["service.name"] == "chosen"


def test_port_selects_connections_whatever_the_process(topo, agent_factory):
    # --port watches the whole host: an unusual port keeps other traffic out.
    c, s = two_services(topo)
    topo.service(s, "10.213.1.2", 18473, "byport")
    topo.service(s, "10.213.1.2", 18474, "otherport")
    agent = agent_factory("--port", "18473")
    assert topo.curl(c, "http://10.213.1.2:18473/status/203") == "203"
    assert topo.curl(c, "http://10.213.1.2:18474/status/204") == "204"
    agent.wait_spans(lambda s: len(s) >= 2)
    time.sleep(0.5)
    spans = agent.spans()
    # Both ends of the port-18473 connection (curl is traced too), nothing else.
    assert sorted((x["kind"], attr(x, "http.response.status_code")) for x in spans) == [
        ("CLIENT", 203), ("SERVER", 203)]
    [client] = by_kind(spans, "CLIENT")
    [server] = by_kind(spans, "SERVER")
    assert client["resource"]["attributes"]["process.executable.name"] == "curl"
    assert server["parent_span_id"] == client["span_id"]  # same-host link by 4-tuple


import pytest


@pytest.mark.parametrize("how", ["fork", "exec"])
def test_children_and_execs_of_a_selected_pid_are_traced(topo, agent_factory, tmp_path, how):
    c, s = two_services(topo)
    # A selected shell that then starts the service: as a child (fork), or
    # in its own place (exec, same pid, new identity).
    script = tmp_path / "child.py"
    script.symlink_to(__import__("conftest").SERVICES / "http_service.py")
    run = f"{PYTHON} {script} --host 10.213.1.2 --port 8080"
    cmd = f"read go; exec {run}" if how == "exec" else f"read go; {run}; true"
    shell = topo.start(s, ["sh", "-c", cmd], stdin=subprocess.PIPE)
    agent = agent_factory("--pid", str(shell.pid))
    shell.stdin.write(b"go\n")
    shell.stdin.flush()
    assert shell.stdout.readline().strip() == b"listening"
    assert topo.curl(c, "http://10.213.1.2:8080/status/205") == "205"
    spans = agent.wait_spans(lambda s: len(s) >= 1)
    [span] = by_kind(spans, "SERVER")
    assert attr(span, "http.response.status_code") == 205
    assert span["resource"]["attributes"]["service.name"] == "child"
    served_by = span["resource"]["attributes"]["process.pid"]
    assert (served_by == shell.pid) == (how == "exec")
    if served_by != shell.pid:
        os.kill(served_by, signal.SIGTERM)  # our service, forked by our shell


def test_default_output_is_a_readable_tree(topo, tmp_path):
    c, s = two_services(topo)
    svc = topo.service(s, "10.213.1.2", 8080, "treesvc")
    out, log = tmp_path / "tree.txt", tmp_path / "agent.log"
    agent = subprocess.Popen([hoptrace_bin(), "run", "--pid", str(svc.pid), "--output-file",
                              str(out)], stderr=open(log, "w"))
    try:
        deadline = time.time() + 20
        while "hoptrace ready" not in log.read_text() and time.time() < deadline:
            time.sleep(0.05)
        assert topo.curl(c, "http://10.213.1.2:8080/work?x=1") == "200"
        time.sleep(1.6)  # a trace prints after a second of quiet
    finally:
        agent.send_signal(2)
        agent.wait(timeout=20)
    text = out.read_text()
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines[0].startswith("trace ") and "1 span" in lines[0]
    assert lines[1].startswith("└─ treesvc  SERVER GET /work?x=REDACTED  200  ")


NGINX_CONF = """
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp;
  fastcgi_temp_path {prefix}/tmp; uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
  server {{
    listen 10.213.1.2:8080;
    location / {{ return 207 "nginx\\n"; }}
  }}
}}
"""


def test_workers_forked_before_the_agent_are_traced_with_their_master(topo, agent_factory,
                                                                      tmp_path):
    c, s = two_services(topo)
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix))
    master = topo.start(s, ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
    deadline = time.time() + 10
    while topo.curl(c, "http://10.213.1.2:8080/", timeout=1) != "207":
        assert time.time() < deadline, "nginx did not start"
        time.sleep(0.1)
    agent = agent_factory("--pid", str(master.pid))  # the master only
    for _ in range(4):
        assert topo.curl(c, "http://10.213.1.2:8080/x") == "207"
    spans = agent.wait_spans(lambda s: len(s) >= 4)
    assert len(spans) == 4
    for span in spans:
        assert span["kind"] == "SERVER"
        assert attr(span, "http.response.status_code") == 207
        assert span["resource"]["attributes"]["service.name"] == "nginx"
        assert span["resource"]["attributes"]["process.pid"] != master.pid  # a worker


def selected_pids(agent_pid):
    """The keys of the agent's ht_selected_pids map (found through its fds)."""
    return set(bpf_util.u32_keys(bpf_util.map_id(agent_pid, "ht_selected_pids")))


THREADS_THEN_FORK = r"""
import os, sys, threading, time
sys.stdin.readline()
ids = []
def work():
    ids.append(threading.get_native_id()); time.sleep(0.5)
ts = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
child = os.fork()
if child == 0:
    time.sleep(30); os._exit(0)
print(child, *ids, flush=True)
time.sleep(30)
"""


def test_threads_of_a_selected_process_are_not_selected_as_processes(topo, agent_factory):
    """The fork tracepoint fires for new threads too: only a new process (a
    fork) is selected and announced, never a thread id."""
    proc = subprocess.Popen([PYTHON, "-c", THREADS_THEN_FORK], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        agent = agent_factory("--pid", str(proc.pid))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        child, *threads = (int(x) for x in proc.stdout.readline().split())
        assert len(threads) == 8 and proc.pid not in threads
        time.sleep(0.5)
        selected = selected_pids(agent.proc.pid)
        assert {proc.pid, child} <= selected, selected
        assert not selected & set(threads), f"thread ids selected as processes: {selected}"
        os.kill(child, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
