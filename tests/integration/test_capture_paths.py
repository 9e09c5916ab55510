"""Which syscall programs follow a server's bytes (bpf/capture.bpf.h).

Where the kernel has bpf_task_pt_regs (`hoptrace check`: "syscall arguments
at exit"), reads and, without propagation, a server's writes are followed at
their exit alone: the exit program reads the arguments back from the
registers the syscall entry saved. Their entry programs then keep no slot for
the thread (ht_active_io, pid_tgid -> the syscall's arguments), so a process
that only serves never gets one. HOPTRACE_READ_AT_EXIT=off makes the agent
act as on an older kernel: the entries record every followed read and
write, and the slots are there; HOPTRACE_SERVER_WRITES_AT_EXIT=off (and a
kernel before 6.12, where the verifier needs past its budget for it) keeps
only the writes' entries. The spans must be the same every way.

Debian's /usr/bin/python3 (conftest.PYTHON), bpftool."""
import struct
import subprocess

import pytest

import bpf_util
from conftest import attr, by_kind, hoptrace_bin

STATUSES = [200, 201, 404, 500, 503]
# /slowbody: 64 writes of 16 KiB, 20 ms apart, after the head's write.
SLOW_WRITES, SLOW_GAP_MS = 64, 20


def server_writes_at_exit():
    """Whether `hoptrace check` says a server's writes are followed at their exit alone."""
    r = subprocess.run([hoptrace_bin(), "check"], capture_output=True, text=True, timeout=60)
    [line] = [ln for ln in r.stdout.splitlines() if "syscall arguments at exit" in ln]
    return line.startswith("ok") and "keep their entry programs" not in line


def slot_tgids(agent):
    """The tgids of the threads that hold a syscall slot in the agent's maps."""
    mid = bpf_util.map_id(agent.proc.pid, "ht_active_io")
    return {struct.unpack("<Q", e.key)[0] >> 32 for e in bpf_util.map_entries(mid)}


MODE_ENV = {"default": {}, "entries": {"HOPTRACE_READ_AT_EXIT": "off"},
            "write-entries": {"HOPTRACE_SERVER_WRITES_AT_EXIT": "off"}}


@pytest.mark.parametrize("mode", list(MODE_ENV))
def test_server_is_followed_at_syscall_exits(topo, agent_factory, mode):
    c, s = topo.ns("c"), topo.ns("s")
    topo.link(c, "10.211.2.1", s, "10.211.2.2")
    server = topo.service(s, "10.211.2.2", 8080, "svc")
    env = MODE_ENV[mode]
    agent = agent_factory("--pid", str(server.pid), "--no-propagation", env=env)
    for code in STATUSES:
        assert topo.curl(c, f"http://10.211.2.2:8080/status/{code}") == str(code)
    assert topo.curl(c, "http://10.211.2.2:8080/slowbody") == "200"

    want = len(STATUSES) + 1
    spans = agent.wait_spans(lambda sp: len(by_kind(sp, "SERVER")) >= want)
    servers = by_kind(spans, "SERVER")
    assert len(servers) == want
    # Each response (its status line is in its first write) paired with its request.
    assert sorted((attr(sp, "url.path"), attr(sp, "http.response.status_code"))
                  for sp in servers) == sorted([(f"/status/{code}", code) for code in STATUSES] +
                                               [("/slowbody", 200)])
    # A server span ends at its response's last write.
    [slow] = [sp for sp in servers if attr(sp, "url.path") == "/slowbody"]
    duration_ms = (int(slow["end_time_unix_nano"]) - int(slow["start_time_unix_nano"])) / 1e6
    assert (SLOW_WRITES - 1) * SLOW_GAP_MS <= duration_ms < SLOW_WRITES * SLOW_GAP_MS + 5000

    followed_at_exit = mode == "default" and server_writes_at_exit()
    holds_slot = server.pid in slot_tgids(agent)
    assert holds_slot != followed_at_exit, (
        f"mode {mode}: server {'holds' if holds_slot else 'holds no'} syscall slot")
