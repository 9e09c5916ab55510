"""The Python runtime context (bpf/runtime_python.bpf.h, issue 11) around the
processes it probes: `hoptrace check --pid` says which model serves a
process; a followed process's behaviour and output do not change; a process
that exits or execs while probed leaves nothing attached (no uretprobe link,
no ht_py_procs entry) while the agent goes on. The shares of right parents are
measured in test_propagation_models.py. Debian's /usr/bin/python3 (3.11)."""
import os
import re
import subprocess
import time

import pytest

import bpf_util
from conftest import PYTHON, hoptrace_bin
from propagation_util import TestCgroup, py_service

COPY_PROG = ("ht_py_ctx_copied", "ht_py_ctx_copie")  # full (BTF) or as the kernel truncates it
# ... and the probes that follow Futures handed to a thread pool: three links a process.
PY_PROGS = COPY_PROG + ("ht_py_lock_new", "ht_py_lock_take")
LINKS_PER_PROCESS = 3


@pytest.fixture
def cg(topo):
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


def py_links(agent):
    """{link id: program name} of the agent's links of the Python runtime
    model's probes (its own: another agent's have the same names)."""
    return {i: n for i, n in bpf_util.named("link", agent.proc.pid).items() if n in PY_PROGS}


def py_procs(agent):
    """Keys (tgids) of the agent's ht_py_procs map."""
    return bpf_util.u32_keys(bpf_util.map_id(agent.proc.pid, "ht_py_procs"))


def wait_for(pred, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_check_says_which_model_serves_a_python_process():
    py = subprocess.Popen([PYTHON, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    sh = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.3)
        out = subprocess.run([hoptrace_bin(), "check", "--pid", str(py.pid), "--pid", str(sh.pid)],
                             capture_output=True, text=True).stdout
        lines = [ln for ln in out.splitlines() if "Python in pid" in ln]
        assert len(lines) == 1, out
        assert f"Python in pid {py.pid}" in lines[0], out
        assert re.search(r"python contexts \(CPython 3\.11\.\d+, /usr/bin/python3\.11\) "
                         r"\+ pool Futures", lines[0]), lines[0]
    finally:
        py.stdin.close()
        py.wait(timeout=10)
        sh.kill()
        sh.wait()


GREETER = r"""
import asyncio, concurrent.futures, contextvars, os, sys
async def main():
    # Copies contexts (tasks, call_soon), hands Futures to a pool, writes to
    # stdout, then exits or execs.
    out = []
    for i in range(50):
        out.append(await asyncio.create_task(asyncio.sleep(0, i)))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        out += [await asyncio.get_running_loop().run_in_executor(pool, sum, [i, 1]) for i in range(20)]
        out += [pool.submit(sum, [i, 2]).result() for i in range(20)]
    print(sum(out), contextvars.copy_context().run(lambda: "ctx"), flush=True)
    sys.stdin.readline()
    if sys.argv[1] == "exec":
        os.execv("/bin/sleep", ["sleep", "30"])
asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["exit", "exec"])
def test_process_that_exits_or_execs_while_probed_leaves_nothing_attached(
        topo, cg, agent_factory, how):
    a = topo.ns("a")
    topo.link(a, "10.213.9.1", topo.ns("b"), "10.213.9.2")
    # A process the agent follows with contexts; its output is what it would be untraced.
    expected = subprocess.run([PYTHON, "-c", GREETER, "exit"], input="\n", capture_output=True,
                              text=True, timeout=30).stdout
    p = subprocess.Popen([PYTHON, "-c", GREETER, how], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, preexec_fn=cg.preexec())
    other, _ = py_service(topo, cg, a, "10.213.9.1", 8000, "front", model="asyncio")
    agent = agent_factory("--propagation-cgroup", str(cg.path), "--pid", str(p.pid),
                          "--pid", str(other.pid))
    try:
        assert wait_for(lambda: len(py_links(agent)) == 2 * LINKS_PER_PROCESS), agent.log_text()
        links = set(py_links(agent))
        assert {p.pid, other.pid} <= set(py_procs(agent)), (py_procs(agent), agent.log_text())
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline() == expected
        if how == "exit":
            assert p.wait(timeout=10) == 0
        else:
            assert wait_for(lambda: os.readlink(f"/proc/{p.pid}/exe") == "/bin/sleep" or
                            os.readlink(f"/proc/{p.pid}/exe").endswith("/sleep"))
        # Gone for the process that left; still there for the one that stays.
        assert wait_for(lambda: len(py_links(agent)) == LINKS_PER_PROCESS), agent.log_text()
        assert wait_for(lambda: p.pid not in py_procs(agent)), py_procs(agent)
        assert other.pid in py_procs(agent)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        agent.stop()
    # None of the links it had is left (link ids are not handed out again soon).
    assert not bpf_util.left_loaded("link", links)
    assert "python contexts (final): processes=" in agent.log_text()
