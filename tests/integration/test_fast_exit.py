"""Processes that exit within milliseconds of their request (a CLI, curl, a
cron job) keep their identity on their CLIENT span: the kernel reports who a
selected process is at its exec, and the agent reads /proc when it hears of
it, not when the span is built.

To make "gone before the agent looked" certain rather than likely, the agent
is stopped (SIGSTOP) while the client runs and continued once the client has
been reaped: every event of the client is then read after its /proc entry
has vanished."""
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import PYTHON, attr, by_kind

# Exits as soon as it has read the response, and reports when it sent its
# last request and when it was about to exit (CLOCK_MONOTONIC ns), and its
# start time as /proc/self/stat gives it (field 22). On a busy
# machine the server may answer late: then it asks again (up to 20 times) so
# that its last request is answered and followed by its exit within 5 ms.
# With a 5th argument it waits for a byte on stdin before connecting.
CLIENT_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Field 22 of /proc/self/stat (starttime); comm, field 2, may hold spaces. */
static unsigned long long start_ticks(void)
{
	char stat[1024], *p;
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;

	if (f)
		fclose(f);
	stat[n] = 0;
	/* The k-th space after comm's ")" starts field 2 + k. */
	p = strrchr(stat, ')');
	for (int k = 0; p && k < 20; k++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {0};
	char req[512], buf[4096], head[16];
	long long t_req, t_done;
	int fd, n, len, got, tries = 0;

	if (argc < 4 || (argc > 4 && read(0, buf, 1) != 1))
		return 3;
	sa.sin_family = AF_INET;
	sa.sin_port = htons(atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	len = snprintf(req, sizeof(req),
		       "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[3], argv[1]);
	do {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return 2;
		t_req = now_ns();
		if (write(fd, req, len) != len)
			return 2;
		got = 0;
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			for (int i = 0; i < n && got < 15; i++)
				head[got++] = buf[i];
		}
		head[got] = 0;
		close(fd);
		t_done = now_ns();
	} while (++tries < 20 && t_done - t_req >= 5000000LL);
	printf("%d %lld %lld %.3s %d %llu\n", getpid(), t_req, t_done, got > 12 ? head + 9 : "",
	       tries, start_ticks());
	return 0;
}
"""

# A selected parent: on a line from stdin it runs the client as its child
# (fork + exec) and reports the client's own line when it has reaped it.
# With --hold NAME it starts the client with OTEL_SERVICE_NAME=NAME, blocked
# before its request, makes a request of its own (whose span tells the test
# that the agent has read every event up to the client's exec), says
# "started", and lets the client go on the next line.
LAUNCHER_PY = r"""
import os, subprocess, sys, urllib.request
hold = sys.argv[1] == "--hold"
cmd = sys.argv[3:] if hold else sys.argv[1:]
sys.stdin.readline()
if hold:
    env = dict(os.environ, OTEL_SERVICE_NAME=sys.argv[2])
    p = subprocess.Popen(cmd + ["wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=env)
    urllib.request.urlopen(f"http://{cmd[1]}:{cmd[2]}/status/202", timeout=10).read()
    print("started", flush=True)
    sys.stdin.readline()
    out, _ = p.communicate("g")
else:
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
print(out.strip(), flush=True)
"""

SERVER = "10.214.1.2"
PORT = 8080


@pytest.fixture
def client_bin(tmp_path_factory):
    """Compiles the client under a name of its own (its comm), so that --exe
    can select it and nothing else on the host."""
    d = tmp_path_factory.mktemp("fastexit")
    exe = d / f"htq{os.urandom(3).hex()}"
    src = d / "client.c"
    src.write_text(CLIENT_C)
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def two_namespaces(topo, port=PORT):
    c, s = topo.ns("c"), topo.ns("s")
    topo.link(c, "10.214.1.1", s, SERVER)
    topo.service(s, SERVER, port, "fastsrv")
    return c


class Stopped:
    """The agent does not run (reads no event, no /proc) inside the block."""

    def __init__(self, agent):
        self.pid = agent.proc.pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


def parse_client_line(line):
    """(pid, number of requests, start time in ticks) of the client's report."""
    pid, t_req, t_done, status, tries, start = line.split()
    pid = int(pid)
    # Gone fast: from its (last) request to its exit within 5 ms, and no
    # longer in /proc by the time the agent gets to run again.
    took = int(t_done) - int(t_req)
    assert took < 5_000_000, f"client took {took} ns"
    assert not os.path.exists(f"/proc/{pid}")
    assert status == "201"
    return pid, int(tries), int(start)


def instance_id(pid, start_ticks):
    """service.instance.id as the agent computes it for a live process
    (agent/process/process_registry.cc: UUID v5 of host/boot id/pid/starttime)."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    name = f"{socket.gethostname()}/{boot_id}/{pid}/{start_ticks}"
    return str(uuid.uuid5(uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320"), name))


def wait_client_span(agent, client):
    """The resource of the CLIENT spans of client (pid, requests, start):
    one span per request, all of one resource, whose instance id is the one
    a live process would have had."""
    pid, tries, start = client
    spans = agent.wait_spans(
        lambda s: len([x for x in by_kind(s, "CLIENT")
                       if x["resource"]["attributes"].get("process.pid") == pid]) >= tries)
    mine = [x for x in by_kind(spans, "CLIENT")
            if x["resource"]["attributes"].get("process.pid") == pid]
    assert len(mine) == tries, f"spans: {spans}\nagent log:\n{agent.log_text()}"
    assert [attr(x, "http.response.status_code") for x in mine] == [201] * tries
    assert all(x["resource"] == mine[0]["resource"] for x in mine)
    res = mine[0]["resource"]["attributes"]
    assert res["service.instance.id"] == instance_id(pid, start)
    return res


def test_fast_child_of_a_selected_parent_keeps_its_identity(topo, agent_factory, tmp_path,
                                                            client_bin):
    c = two_namespaces(topo)
    launcher_py = tmp_path / "launcher.py"
    launcher_py.write_text(LAUNCHER_PY)
    launcher = topo.start(c, [PYTHON, str(launcher_py), str(client_bin), SERVER, str(PORT),
                              "/status/201"], stdin=subprocess.PIPE)
    agent = agent_factory("--pid", str(launcher.pid))
    with Stopped(agent):
        launcher.stdin.write(b"go\n")
        launcher.stdin.flush()
        client = parse_client_line(launcher.stdout.readline().decode())
    res = wait_client_span(agent, client)
    assert res["service.name"] == client_bin.name
    assert res["process.executable.name"] == client_bin.name
    assert res["process.executable.path"] == str(client_bin)
    assert res["process.command"] == client_bin.name
    assert res["process.parent_pid"] == launcher.pid


def test_fast_process_started_after_the_agent_is_selected_by_exe(topo, agent_factory,
                                                                 client_bin):
    c = two_namespaces(topo)
    agent = agent_factory("--exe", client_bin.name)
    with Stopped(agent):
        # The agent cannot select it: the kernel must, at its exec.
        client = topo.start(c, [str(client_bin), SERVER, str(PORT), "/status/201"])
        out, _ = client.communicate(timeout=10)
        report = parse_client_line(out.decode())
    assert report[0] == client.pid  # `ip netns exec` execs the client in its own place
    res = wait_client_span(agent, report)
    assert res["service.name"] == client_bin.name
    assert res["process.executable.name"] == client_bin.name
    assert res["process.executable.path"] == str(client_bin)
    assert res["process.pid"] == client.pid


def test_fast_process_selected_by_port_is_named_at_its_connect(topo, agent_factory, client_bin):
    # --port watches the whole host: an unusual port keeps other traffic out.
    port = 18491
    c = two_namespaces(topo, port)
    agent = agent_factory("--port", str(port))
    with Stopped(agent):
        # Never exec'd under the agent's eyes as a selected process: the
        # kernel describes it at its connect.
        client = topo.start(c, [str(client_bin), SERVER, str(port), "/status/201"])
        out, _ = client.communicate(timeout=10)
        client_report = parse_client_line(out.decode())
    res = wait_client_span(agent, client_report)
    assert res["service.name"] == client_bin.name
    assert res["process.executable.name"] == client_bin.name
    assert res["process.command"] == client_bin.name
    assert res["process.parent_pid"] == os.getpid()


def test_otel_service_name_of_a_fast_child_is_read_when_it_is_selected(topo, agent_factory,
                                                                        tmp_path, client_bin):
    c = two_namespaces(topo)
    launcher_py = tmp_path / "launcher.py"
    launcher_py.write_text(LAUNCHER_PY)
    launcher = topo.start(c, [PYTHON, str(launcher_py), "--hold", "fast-otel-child",
                              str(client_bin), SERVER, str(PORT), "/status/201"],
                          stdin=subprocess.PIPE)
    agent = agent_factory("--pid", str(launcher.pid))
    launcher.stdin.write(b"go\n")
    launcher.stdin.flush()
    assert launcher.stdout.readline().strip() == b"started"
    agent.wait_spans(lambda s: any(attr(x, "http.response.status_code") == 202 for x in s))
    with Stopped(agent):
        launcher.stdin.write(b"go\n")
        launcher.stdin.flush()
        client = parse_client_line(launcher.stdout.readline().decode())
    res = wait_client_span(agent, client)
    assert res["service.name"] == "fast-otel-child"
    assert res["process.executable.name"] == client_bin.name
    assert res["process.parent_pid"] == launcher.pid


def test_otel_service_name_of_a_fast_process_is_read_when_it_is_selected(topo, agent_factory,
                                                                         client_bin):
    c = two_namespaces(topo)
    agent = agent_factory("--exe", client_bin.name)
    client = topo.start(c, [str(client_bin), SERVER, str(PORT), "/status/201", "wait"],
                        env={"OTEL_SERVICE_NAME": "fast-otel-cli"}, stdin=subprocess.PIPE)
    # Selected and read at its exec: the agent says so before the request.
    deadline = time.time() + 10
    while f"tracing pid {client.pid} (fast-otel-cli)" not in agent.log_text():
        assert time.time() < deadline, agent.log_text()
        time.sleep(0.02)
    with Stopped(agent):
        out, _ = client.communicate(input=b"g", timeout=10)
        client_report = parse_client_line(out.decode())
    res = wait_client_span(agent, client_report)
    assert res["service.name"] == "fast-otel-cli"
    assert res["process.executable.name"] == client_bin.name
    assert res["process.pid"] == client.pid
