"""The BPF programs, maps and links one process holds, for tests that share
the machine with other hoptrace agents (a second test run, a DaemonSet).

Every kernel object of ours carries the same names as theirs (ht_*), so a
test that asks bpftool for a name sees every agent's. What one process holds
is in its /proc/PID/fdinfo, one file an fd (kernel 6.18, checked):
  anon_inode:bpf-prog   prog_id: N
  anon_inode:bpf-map    map_id: N
  anon_inode:bpf_link   link_id: N, prog_id: N (every link type: cgroup,
                        raw_tracepoint, perf, i.e. uprobes and tracepoints
                        since 5.15; link fdinfo exists since 5.8)
  anon_inode:[perf_event]  nothing: a probe attached by the perf ioctl
                        (kernels without perf links) is found through the
                        program's own fd, which libbpf keeps open.
A program attached through a link counts as held (the link's prog_id).
bpftool, asked by id, says the rest.

Ids are never handed out again soon: the kernel allocates prog, map and
link ids cyclically (idr_alloc_cyclic) up to INT_MAX, so "an id our agent
held is loaded again" means "the object is still there".

Debian's /usr/bin/python3, standard library and bpftool only."""
import json
import os
import re
import subprocess
import time
from collections import namedtuple

KINDS = ("prog", "map", "link")
# BPF object names are 15 bytes in the kernel (BPF_OBJ_NAME_LEN - 1);
# bpftool shows the longer BTF name of a program, not of a map.
NAME_LEN = 15

Entry = namedtuple("Entry", "key value")
Entry.__doc__ = """One map element: key bytes; value bytes, or for a per-CPU
map a list of bytes, one per CPU."""


def _fdinfos(pid):
    """The text of every fdinfo of process pid; fds closed meanwhile skipped."""
    d = f"/proc/{pid}/fdinfo"
    try:
        fds = os.listdir(d)
    except OSError:  # gone, or a kernel thread's
        return
    for fd in fds:
        try:
            with open(f"{d}/{fd}") as f:
                yield f.read()
        except OSError:
            continue


def held_ids(pid):
    """{"prog": ids, "map": ids, "link": ids} that process pid holds an fd of
    (programs: their own fds and the links' programs)."""
    out = {k: set() for k in KINDS}
    for text in _fdinfos(pid):
        for kind in KINDS:
            m = re.search(rf"^{kind}_id:\s*(\d+)", text, re.M)
            if m:
                out[kind].add(int(m.group(1)))
    return out


def prog_ids(pid):
    return held_ids(pid)["prog"]


def map_ids(pid):
    return held_ids(pid)["map"]


def link_ids(pid):
    return held_ids(pid)["link"]


def prog_ids_held_anywhere():
    """Program ids that some live process holds an fd of (tests/matrix/cell.py:
    a program nobody holds is one an agent left behind)."""
    held = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            held |= prog_ids(pid)
    return held


def bpftool_json(*args):
    """bpftool -j ARGS, parsed; None when bpftool fails (no such id)."""
    r = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout or "null")


def show(kind, obj_id):
    """bpftool's description of one object (dict with "id", "name", ...), or
    None once it is gone."""
    return bpftool_json(kind, "show", "id", str(obj_id))


def loaded_ids(kind):
    """Ids of every object of kind loaded in the kernel, anyone's: to see
    which of the ids our agent held are still there."""
    shown = bpftool_json(kind, "show")
    assert shown is not None, f"bpftool {kind} show failed"
    return {o["id"] for o in shown}


def left_loaded(kind, ids, timeout=10.0):
    """Which of ids (objects of kind an agent held) are still loaded once
    the kernel has had up to `timeout` seconds to free them: it frees a
    closed program or link after RCU grace periods (a BTF tracepoint's link
    after a tasks-trace one), not when its last fd is closed. Ids are not
    handed out again soon, so one still loaded then is one left behind."""
    ids = set(ids)
    deadline = time.time() + timeout
    left = ids & loaded_ids(kind)
    while left and time.time() < deadline:
        time.sleep(0.1)
        left = ids & loaded_ids(kind)
    return left


def named(kind, pid):
    """{id: name} of the objects of kind ("prog", "map" or "link": links by
    their program's name) that process pid holds. One bpftool listing,
    filtered by the ids; an object gone meanwhile is left out."""
    ids = held_ids(pid)
    if kind == "link":
        # Link fdinfo names the program, not bpftool's link listing (for
        # every link type).
        progs = named("prog", pid)
        out = {}
        for text in _fdinfos(pid):
            lm = re.search(r"^link_id:\s*(\d+)", text, re.M)
            pm = re.search(r"^prog_id:\s*(\d+)", text, re.M)
            if lm and pm and int(pm.group(1)) in progs:
                out[int(lm.group(1))] = progs[int(pm.group(1))]
        return out
    shown = bpftool_json(kind, "show") or []
    return {o["id"]: o.get("name", "") for o in shown if o["id"] in ids[kind]}


def progs(pid):
    """{id: name} of the programs process pid holds."""
    return named("prog", pid)


def prog_name(prog_id):
    """The name of a loaded program, or None once it is gone."""
    p = show("prog", prog_id)
    return p.get("name", "") if p else None


def map_id(pid, name):
    """The id of the one map named name (as the kernel truncates it) that
    process pid holds; fails the test when it holds none or several."""
    ids = [i for i, n in named("map", pid).items() if n == name[:NAME_LEN]]
    assert len(ids) == 1, f"process {pid} holds {len(ids)} maps named {name}"
    return ids[0]


def _bytes(hexes):
    return bytes(int(b, 16) for b in hexes)


def map_entries(mid):
    """The elements of map mid as [Entry(key, value)], bytes as the kernel has
    them (bpftool's raw hex, whatever BTF it also prints); None when the map
    is gone."""
    dump = bpftool_json("map", "dump", "id", str(mid))
    if dump is None:
        return None
    out = []
    for e in dump:
        if "values" in e:  # per-CPU: [{"cpu": N, "value": [...]}]
            value = [_bytes(v["value"]) for v in sorted(e["values"], key=lambda v: v["cpu"])]
        else:
            value = _bytes(e["value"])
        out.append(Entry(_bytes(e["key"]), value))
    return out


def u32_keys(mid):
    """The keys of map mid read as little-endian u32 (their first 4 bytes:
    a tgid, a pid); None when the map is gone."""
    entries = map_entries(mid)
    if entries is None:
        return None
    return [int.from_bytes(e.key[:4], "little") for e in entries]
