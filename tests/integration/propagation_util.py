"""Helpers of the propagation tests: a cgroup of their own, services that
log the raw heads they receive, and checks on those heads.

Safety: propagation changes bytes on the wire, so every test creates its own
cgroup v2 directory (hoptrace-test-<random>) in the cgroup v2 hierarchy wherever
the host mounts it (/sys/fs/cgroup on Debian 12, /sys/fs/cgroup/unified on
hybrid hosts; mounted privately under /run when the host has none),
starts only its own processes in it (each moves itself there before exec),
points the agent's --propagation-cgroup at it, and removes it afterwards.
The root cgroup is never used.
"""
import errno
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import PYTHON, SERVICES, by_kind, descendants, kill_survivors, scaled

PRIVATE_CGROUP2 = Path("/run/hoptrace-test-cgroup2")
TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def cgroup2_mounts(mountinfo="/proc/self/mountinfo"):
    """Mount points of cgroup v2 in this mount namespace, in mount order."""
    found = []
    with open(mountinfo) as f:
        for line in f:
            # "36 25 0:31 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw"
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2":
                found.append(Path(fields[4].replace("\\040", " ")))
    return found


def cgroup2_root():
    """The cgroup v2 hierarchy the tests' cgroups go in: the host's own,
    wherever it is mounted, else a private mount of it. A test that needs
    a cgroup fails here with the reason, never skips."""
    for m in cgroup2_mounts():
        if (m / "cgroup.procs").exists():
            return m
    PRIVATE_CGROUP2.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "cgroup2", "none", str(PRIVATE_CGROUP2)],
                       capture_output=True, text=True)
    if r.returncode != 0 or not (PRIVATE_CGROUP2 / "cgroup.procs").exists():
        pytest.fail(f"no cgroup v2 hierarchy mounted and mounting one at {PRIVATE_CGROUP2} "
                    f"failed: {r.stderr.strip()} (the kernel needs CONFIG_CGROUPS with cgroup2)")
    return PRIVATE_CGROUP2


class TestCgroup:
    """A cgroup v2 directory for the processes of one test."""

    __test__ = False  # not a pytest class

    def __init__(self):
        self.path = cgroup2_root() / f"hoptrace-test-{uuid.uuid4().hex[:10]}"
        self.path.mkdir()
        self.extra_pids = []

    def preexec(self):
        """For Popen(preexec_fn=...): the child joins the cgroup before exec,
        so every socket it (or any child) makes belongs to it."""
        procs = str(self.path / "cgroup.procs")

        def join():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return join

    def pids(self):
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def remove(self, started):
        """Removes the directory once the processes the test started are
        gone. started: the test's Popen objects, killed by pid if alive;
        self.extra_pids: children of those the test recorded (nginx
        workers), killed by pid too, as is any other descendant of a started
        process still alive once that process is gone (the same process:
        pid and start time; an nginx master's workers outlive a SIGKILL of
        the master). Nothing else is touched."""
        kin = [d for p in started if p.poll() is None for d in descendants(p.pid)]
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=scaled(10))
        for pid in self.extra_pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        kill_survivors(kin)
        # Killed processes leave cgroup.procs before they are done exiting
        # (freeing their memory, their uprobes): until then rmdir says EBUSY
        # with no pid listed. Seen with a few dozen killed at once.
        deadline = time.time() + scaled(10)
        while True:
            try:
                self.path.rmdir()
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.time() > deadline:
                    raise AssertionError(f"cgroup {self.path} not removable: {e}, "
                                         f"pids {self.pids()}")
            time.sleep(0.05)


def start_in(topo, cg, ns, argv, env=None):
    """Starts argv in namespace ns, inside cgroup cg."""
    return topo.start(ns, argv, env=env, preexec_fn=cg.preexec())


def py_service(topo, cg, ns, host, port, name, model="threads", downstream=(), sleep_ms=0,
               env=None, jitter_ms=0):
    """tests/integration/services/prop_service.py as `name`.py; returns
    (Popen, path of its raw-head log)."""
    d = Path(f"/tmp/ht{topo.tag}")
    d.mkdir(exist_ok=True)
    script = d / f"{name}.py"
    if not script.exists():
        script.symlink_to(SERVICES / "prop_service.py")
    log = d / f"{name}.heads.jsonl"
    argv = [PYTHON, str(script), "--host", host, "--port", str(port), "--model", model,
            "--sleep-ms", str(sleep_ms), "--jitter-ms", str(jitter_ms), "--headers-log", str(log)]
    for url in downstream:
        argv += ["--downstream", url]
    p = start_in(topo, cg, ns, argv, env=env)
    line = p.stdout.readline()
    assert line.strip() == b"listening", f"{name} did not start"
    return p, log


def node_service(topo, cg, ns, host, port, name, downstream="", env=None, jitter_ms=0,
                 client="global", max_sockets=4, fanout=1, jitter_after_ms=0):
    """tests/integration/services/prop_service.js; returns (Popen, head log).
    client: global (http.get, the global agent), agent (a keep-alive
    http.Agent of max_sockets), fetch (undici)."""
    d = Path(f"/tmp/ht{topo.tag}")
    d.mkdir(exist_ok=True)
    script = d / f"{name}.js"
    if not script.exists():
        script.symlink_to(SERVICES / "prop_service.js")
    log = d / f"{name}.heads.jsonl"
    argv = ["node", str(script), "--host", host, "--port", str(port), "--headers-log", str(log),
            "--jitter-ms", str(jitter_ms)]
    if downstream:
        argv += ["--downstream", downstream]
    if client != "global" or fanout != 1 or jitter_after_ms:
        argv += ["--client", client, "--max-sockets", str(max_sockets), "--fanout", str(fanout),
                 "--jitter-after-ms", str(jitter_after_ms)]
    p = start_in(topo, cg, ns, argv, env=env)
    line = p.stdout.readline()
    assert line.strip() == b"listening", f"{name} did not start"
    return p, log


NGINX_CONF = """
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format heads escape=json '{{"traceparent":"$http_traceparent","tracestate":"$http_tracestate"}}';
  access_log {dir}/access.log heads;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  server {{
    listen {host}:{port};
    location / {{
      proxy_read_timeout {read_s}s;
      proxy_pass {upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def nginx_proxy(topo, cg, ns, host, port, upstream, workers=1):
    """nginx as a reverse proxy to upstream; returns (master Popen, dir). Its
    access log holds the traceparent/tracestate each request arrived with."""
    d = Path(f"/tmp/ht{topo.tag}/nginx-{port}")
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    # nginx's own default wait for the upstream is 60 s.
    conf.write_text(NGINX_CONF.format(dir=d, host=host, port=port, upstream=upstream,
                                      workers=workers, read_s=round(scaled(60))))
    p = start_in(topo, cg, ns, ["nginx", "-c", str(conf), "-p", str(d)])
    deadline = time.time() + scaled(10)
    while time.time() < deadline:
        kids = nginx_workers(p.pid)
        if len(kids) >= workers and port_open(topo, ns, port):
            cg.extra_pids += kids
            return p, d
        time.sleep(0.05)
    raise AssertionError("nginx did not start: " + (d / "error.log").read_text())


def nginx_workers(master_pid):
    try:
        kids = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    except OSError:
        return []
    return [int(k) for k in kids]


def port_open(topo, ns, port):
    r = subprocess.run(["ip", "netns", "exec", ns, "ss", "-ltnH", f"( sport = :{port} )"],
                       capture_output=True, text=True)
    return bool(r.stdout.strip())


def heads(log):
    """The raw request heads a service logged, in arrival order."""
    if not Path(log).exists():
        return []
    # Only whole lines: the service may be writing the last one right now.
    lines = Path(log).read_text().split("\n")[:-1]
    return [json.loads(line)["head"] for line in lines if line]


def header_values(head, name):
    """Every value of field `name` (case-insensitive) in a raw head, OWS trimmed."""
    out = []
    for line in head.split("\r\n")[1:]:
        if not line:
            break
        k, sep, v = line.partition(":")
        if sep and k.lower() == name.lower():
            out.append(v.strip(" \t"))
    return out


def one_traceparent(head):
    """Asserts the head holds exactly one valid version-00 traceparent;
    returns (trace id, parent id, flags)."""
    values = header_values(head, "traceparent")
    assert len(values) == 1, f"expected one traceparent in:\n{head}"
    m = TP_RE.match(values[0])
    assert m, f"invalid traceparent {values[0]!r}"
    return m.group(1), m.group(2), m.group(3)


def wait_heads(log, n, timeout=15):
    """Waits until the service logged n heads (timeout: host seconds,
    scaled); returns them."""
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        h = heads(log)
        if len(h) >= n:
            return h
        time.sleep(0.05)
    return heads(log)


def check_one_hop(agent, leaf_log, front_name, leaf_name):
    """front (SERVER, CLIENT) -> leaf (SERVER), one request injected: the
    leaf received exactly one traceparent naming front's CLIENT span, and
    the three spans form one trace. Returns (spans, trace id on the wire)."""
    spans = agent.wait_spans(lambda s: len(by_kind(s, "SERVER", leaf_name)) >= 1 and
                             len(by_kind(s, "CLIENT", front_name)) >= 1 and
                             len(by_kind(s, "SERVER", front_name)) >= 1)
    [f_cli] = by_kind(spans, "CLIENT", front_name)
    [f_srv] = by_kind(spans, "SERVER", front_name)
    [l_srv] = by_kind(spans, "SERVER", leaf_name)
    [head] = wait_heads(leaf_log, 1)
    trace, parent, flags = one_traceparent(head)
    assert (parent, flags) == (f_cli["span_id"], "01")
    assert f_cli["parent_span_id"] == f_srv["span_id"]
    assert l_srv["parent_span_id"] == f_cli["span_id"]
    assert f_srv["trace_id"] == f_cli["trace_id"] == l_srv["trace_id"]
    return spans, trace
