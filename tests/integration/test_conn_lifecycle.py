"""Connections end in the agent however they end in the process: close(2),
a socket replaced under its fd (dup2), or process exit. Tracked state must
return to zero while the process lives on."""
import re
import time

from conftest import PYTHON, attr, by_kind

# A client that does one keep-alive request, then drops its socket without
# close(2) by dup2-ing /dev/null over the fd, and stays alive.
CLIENT = r"""
import os, socket, sys
sys.stdin.readline()
s = socket.create_connection(("10.211.1.2", 8080))
s.sendall(b"GET /status/200 HTTP/1.1\r\nHost: svc\r\n\r\n")
resp = b""
while b"ok\n" not in resp:
    resp += s.recv(4096)
os.dup2(os.open("/dev/null", os.O_RDONLY), s.fileno())
print("dropped", flush=True)
sys.stdin.readline()
"""


def live_conns(agent):
    found = re.findall(r"stats \(periodic\):.* conns=(\d+)", agent.log_text())
    return int(found[-1]) if found else None


def test_socket_dropped_without_close_ends_connection(topo, agent_factory):
    c, s = topo.ns("c"), topo.ns("s")
    topo.link(c, "10.211.1.1", s, "10.211.1.2")
    topo.service(s, "10.211.1.2", 8080, "svc")
    client = topo.start(c, [PYTHON, "-c", CLIENT], stdin=__import__("subprocess").PIPE)
    agent = agent_factory("--pid", str(client.pid), "--stats-interval", "1")
    client.stdin.write(b"go\n")
    client.stdin.flush()
    assert client.stdout.readline().strip() == b"dropped"

    spans = agent.wait_spans(lambda s: len(s) >= 1)
    [span] = by_kind(spans, "CLIENT")
    assert attr(span, "http.response.status_code") == 200
    assert attr(span, "network.peer.address") == "10.211.1.2"

    # The client is alive and never called close(2) on the socket, yet the
    # connection must be gone (sock:inet_sock_set_state -> TCP_CLOSE).
    deadline = time.time() + 10
    while time.time() < deadline and live_conns(agent) != 0:
        time.sleep(0.2)
    assert live_conns(agent) == 0
    assert client.poll() is None
    client.stdin.write(b"bye\n")
    client.stdin.flush()
