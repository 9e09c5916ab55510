"""The agent's image, built here and run as the DaemonSet runs it.

The image is built from the Containerfile by buildah (scripts/build_image.sh,
no daemon) on a Debian 12 base made by debootstrap from Debian's archive
(scripts/image_base.sh: no container registry is reachable from our machines),
then run by podman as a privileged container in the host's pid namespace with
the Helm chart's host mounts (tracefs, the host's cgroup v2 hierarchy at
/host/sys/fs/cgroup) and a config file at the path the chart's ConfigMap is
mounted. It traces two Python services this test starts in a network namespace
of its own (selected by their host pids, which the agent sees through the
host's /proc) and exports over OTLP to a receiver on 127.0.0.1 (host network).

podman and buildah come from scripts/setup.sh --image; a missing tool fails
the test, it never skips. Local specifics of this machine, measured:
- crun (Debian 12's 1.8.1) refuses a hybrid cgroup layout whose v2 hierarchy
  has a controller enabled ("cgroups in hybrid mode not supported, drop all
  controllers from cgroupv2"; here hugetlb), even with --cgroups=disabled: the
  container runs under runc, which places it in a cgroup parent this test
  makes (--cgroup-parent) and removes.
- podman's default rlimits (nofile 1048576) cannot be set without
  CAP_SYS_RESOURCE, which this machine's root lacks: the limits are given.
"""
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import bpf_util
from propagation_util import cgroup2_root

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("HOPTRACE_IMAGE", "localhost/hoptrace:dev")
# The image must stay small: the runtime stage holds the agent and the shared libraries it
# links (measured 2026-12: see README "The image").
MAX_IMAGE_BYTES = 200 * 1000 * 1000


def image_env():
    """The environment of scripts/image_env.sh (the project's own container storage)."""
    out = subprocess.run(["bash", "-c", f". {ROOT}/scripts/image_env.sh && env -0"],
                         capture_output=True, check=True).stdout
    return dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)


def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} not found: run sudo scripts/setup.sh --image")
    return path


@pytest.fixture(scope="module")
def built_image():
    tool("buildah"), tool("podman"), tool("runc"), tool("debootstrap")
    env = image_env()
    start = time.time()
    r = subprocess.run([str(ROOT / "scripts" / "build_image.sh"), IMAGE], env=env,
                       capture_output=True, text=True, timeout=7200)
    took = time.time() - start
    assert r.returncode == 0, f"image build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    info = json.loads(subprocess.run(["podman", "image", "inspect", IMAGE], env=env,
                                     capture_output=True, text=True, check=True).stdout)[0]
    print(f"image {IMAGE}: built in {took:.0f} s, {info['Size']} bytes")
    return env, info


class Container:
    """`podman run` of the image as the chart runs it; removed at the end, with
    the cgroups runc made for it."""

    def __init__(self, env, tmp_path):
        self.env = env
        self.tag = uuid.uuid4().hex[:8]
        self.name = f"hoptrace-test-{self.tag}"
        self.cgroup_parent = f"/hoptrace-test-image-{self.tag}"
        self.log = tmp_path / "container.log"
        self.proc = None

    def run(self, config, *extra):
        nofile = int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True,
                                    text=True).stdout)
        argv = [tool("podman"), "run", "--rm", "--name", self.name,
                "--runtime", "runc", "--cgroup-parent", self.cgroup_parent,
                "--pid=host", "--network=host",
                # podman itself runs with at most 32768 processes here (its own limit):
                # a container may not have more.
                "--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", "nproc=32768:32768",
                # The chart's mounts (helm/hoptrace/templates/daemonset.yaml).
                "-v", "/sys/kernel/tracing:/sys/kernel/tracing:ro",
                "-v", f"{cgroup2_root()}:/host/sys/fs/cgroup:ro",
                "-v", f"{config}:/etc/hoptrace/hoptrace.yaml:ro",
                *extra, IMAGE]
        self.proc = subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))
        return self

    def text(self):
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "hoptrace ready" in self.text():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"the container exited ({self.proc.returncode}):\n{self.text()}")
            time.sleep(0.2)
        pytest.fail(f"the agent in the container did not get ready:\n{self.text()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # SIGTERM to the agent (pid 1 in the container), as the kubelet stops it.
            subprocess.run(["podman", "stop", "-t", "20", self.name], env=self.env,
                           capture_output=True)
            self.proc.wait(timeout=40)
        self.remove_cgroups()

    def remove_cgroups(self):
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            top = hierarchy / self.cgroup_parent.lstrip("/")
            if not top.is_dir():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()),
                            key=lambda p: -len(p.parts)) + [top]:
                for _ in range(50):
                    try:
                        d.rmdir()
                        break
                    except OSError:
                        time.sleep(0.1)


def test_image_is_small_and_runs_as_root_by_design(built_image):
    env, info = built_image
    assert info["Size"] < MAX_IMAGE_BYTES, f"image is {info['Size']} bytes"
    cfg = info["Config"]
    assert cfg["Entrypoint"] == ["/usr/bin/hoptrace"]
    assert cfg["Cmd"] == ["run", "--config", "/etc/hoptrace/hoptrace.yaml"]
    assert cfg.get("User") in ("0", "root")
    # No compiler, no -dev package, no source made it into the runtime stage.
    r = subprocess.run(["podman", "run", "--rm", "--runtime", "runc", "--network=host",
                        "--cgroup-parent", f"/hoptrace-test-image-ls-{uuid.uuid4().hex[:6]}",
                        "--ulimit", "nproc=32768:32768", "--ulimit", "nofile=1024:1024",
                        "--entrypoint", "sh", IMAGE, "-c",
                        "ls /src /build 2>&1; command -v cc clang cmake; "
                        "dpkg-query -W -f='${Package}\\n' | grep -- '-dev$'; "
                        "/usr/bin/hoptrace --version"],
                       env=env, capture_output=True, text=True, timeout=120)
    c = Container(env, Path("/tmp"))
    c.cgroup_parent = r.args[r.args.index("--cgroup-parent") + 1]
    c.remove_cgroups()
    assert "No such file" in r.stdout and "cmake" not in r.stdout and "-dev" not in r.stdout, \
        r.stdout + r.stderr
    assert re.search(r"hoptrace \d", r.stdout + r.stderr), r.stdout + r.stderr


# How the chart runs the container: `privileged: true`, or (its default) every capability
# dropped but the ones helm/hoptrace/values.yaml lists, with seccomp unconfined (the chart's
# seccompProfile default: podman's default profile, like others, refuses bpf(2) without
# CAP_SYS_ADMIN, measured here: EPERM on the first program). SYS_RESOURCE, the chart's
# fifth, is left out: this machine's root lacks it (and kernels from 5.11 on do not need it).
MODES = {
    "privileged": ["--privileged"],
    "capabilities": ["--cap-drop", "ALL", "--cap-add", "BPF,PERFMON,NET_ADMIN,SYS_PTRACE",
                     "--security-opt", "seccomp=unconfined",
                     "--security-opt", "no-new-privileges"],
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_agent_in_the_image_traces_host_processes(built_image, topo, receiver, tmp_path, mode):
    env, _ = built_image
    ns = topo.ns("img")
    back = topo.service(ns, "127.0.0.1", 18181, "imgback")
    front = topo.service(ns, "127.0.0.1", 18180, "imgfront",
                         downstream="http://127.0.0.1:18181")
    config = tmp_path / "hoptrace.yaml"
    # The keys of the chart's ConfigMap; the pids are host pids, seen through hostPID.
    config.write_text(f"""\
select:
  pids: [{front.pid}, {back.pid}]
output: otlp
otlp:
  endpoint: {receiver.endpoint("grpc")}
  protocol: grpc
  insecure: true
batch:
  schedule_delay_ms: 200
""")
    c = Container(env, tmp_path)
    ours = set()
    try:
        c.run(config, *MODES[mode]).wait_ready()
        agent_pid = int(subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}",
                                        c.name], env=env, capture_output=True, text=True,
                                       check=True).stdout)
        ours = bpf_util.prog_ids(agent_pid)  # other agents on a shared machine hold their own
        assert len(ours) >= 5, f"the container's agent (host pid {agent_pid}) holds {ours}"
        for _ in range(3):
            assert topo.curl(ns, "http://127.0.0.1:18180/work?id=7") == "200"
        spans = receiver.wait_spans(
            lambda s: len([x for x in s if x.service == "imgfront" and x["kind"] == 2]) >= 3
            and len([x for x in s if x.service == "imgback" and x["kind"] == 2]) >= 3,
            timeout=30)
        servers = [s for s in spans if s["kind"] == 2 and s.service == "imgfront"]
        assert servers, f"no SERVER span of imgfront: {spans}\n{c.text()}"
        s = servers[0]
        assert s["name"] == "GET"  # no route known: the method alone (semconv)
        assert s.attributes["http.request.method"] == "GET"
        assert s.attributes["url.path"] == "/work"
        assert s.attributes["http.response.status_code"] == 200
        assert s.attributes["server.port"] == 18180
        assert s.resource["service.name"] == "imgfront"
        # The host's pid, read by the agent through the host's /proc.
        assert s.resource["process.pid"] == front.pid
        clients = [x for x in spans if x["kind"] == 3 and x.service == "imgfront"]
        assert clients and clients[0].attributes["server.port"] == 18181
        backs = [x for x in spans if x["kind"] == 2 and x.service == "imgback"]
        linked = [b for b in backs if b["traceId"] == clients[0]["traceId"]]
        assert linked and linked[0]["parentSpanId"] == clients[0]["spanId"]
    finally:
        c.stop()
    text = c.text()
    assert "hoptrace stopped; all programs detached" in text, text
    left = bpf_util.left_loaded("prog", ours)
    assert not left, f"programs {left} left in the kernel after the container stopped"
    out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], env=env,
                         capture_output=True, text=True).stdout
    assert c.name not in out
