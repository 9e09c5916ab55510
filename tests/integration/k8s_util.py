"""A real Kubernetes API server for the pod-metadata tests, and the chart.

kube-apiserver (built from the k8s.io/kubernetes module by scripts/k8s_tools.sh)
over etcd from Debian's etcd-server package, both on loopback ports of their own,
with a CA and serving certificate made here by openssl and static bearer tokens:
one for the test (system:masters), one for the agent, which gets exactly the
chart's ClusterRole. There is no kubelet and no controller manager: the test
writes Pods (spec.nodeName set, status written through the status subresource as
a kubelet would) and their owners itself. The agent reaches the API server
through a TCP relay the test can cut, to drop its watch.

Run with Debian's /usr/bin/python3 (python3-yaml).
"""
import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "hoptrace"
TOOLS = Path(os.environ.get("HOPTRACE_TOOLS", "/var/cache/hoptrace-tools"))
K8S_VERSION = "v1.37.2"
ADMIN_TOKEN = "hoptrace-test-admin-token"
AGENT_TOKEN = "hoptrace-test-agent-token"
AGENT_USER = "hoptrace-agent"


def tool(name):
    path = TOOLS / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup.sh --tests (scripts/k8s_tools.sh)")
    return str(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def helm_template(*args, values=None):
    """helm template of the chart; the rendered objects, as dicts."""
    argv = [tool("helm"), "template", "hoptrace", str(CHART), "--namespace", "tracing",
            "--kube-version", K8S_VERSION]
    argv += list(args)
    for v in values or ():
        argv += ["-f", str(v)]
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 0, f"helm template failed: {r.stderr}"
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class Relay:
    """A TCP relay 127.0.0.1:port -> 127.0.0.1:target that can be cut: cut()
    closes every relayed connection and refuses new ones until restore()."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.conns = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def restore(self):
        self.open = True

    def stop(self):
        self.stopped = True
        self.cut()
        self.listener.close()


class ApiServer:
    """etcd + kube-apiserver in a directory of the test's."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.procs = []
        self.etcd_port = free_port()
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"

    # -- set-up -----------------------------------------------------------
    def start(self):
        try:
            return self._start()
        except BaseException:
            self.stop()  # pytest.fail included: nothing of ours stays running
            raise

    def _start(self):
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                 "/CN=hoptrace-test-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
                 "-keyout", "server.key", "-out", "server.csr", cwd=d)
        (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
                 cwd=d)
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
        (d / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},test-admin,1,"system:masters"\n{AGENT_TOKEN},{AGENT_USER},2\n')
        (d / "agent.token").write_text(AGENT_TOKEN + "\n")
        etcd_log = open(d / "etcd.log", "w")
        peer = f"http://127.0.0.1:{free_port()}"
        self.procs.append(subprocess.Popen(
            ["etcd", "--name", "hoptrace-test", "--data-dir", str(d / "etcd"),
             "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"hoptrace-test={peer}",
             "--log-level", "warn", "--logger", "zap"],
            stdout=etcd_log, stderr=subprocess.STDOUT))
        self._wait(lambda: self._etcd("/v3/kv/range", {"key": _b64("x")}) is not None,
                   "etcd", d / "etcd.log")
        api_log = open(d / "apiserver.log", "w")
        self.procs.append(subprocess.Popen(
            [tool(f"kube-apiserver-{K8S_VERSION}"),
             "--etcd-servers", f"http://127.0.0.1:{self.etcd_port}",
             "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
             "--secure-port", str(self.port),
             "--tls-cert-file", str(d / "server.crt"),
             "--tls-private-key-file", str(d / "server.key"),
             "--token-auth-file", str(d / "tokens.csv"),
             "--authorization-mode", "RBAC",
             "--service-account-issuer", "https://kubernetes.default.svc",
             "--service-account-key-file", str(d / "sa.key"),
             "--service-account-signing-key-file", str(d / "sa.key"),
             "--service-cluster-ip-range", "10.96.0.0/16",
             "--cert-dir", str(d / "certs"),
             # Watches go to etcd itself: a resourceVersion older than etcd's
             # compaction is then answered with 410 Gone, as on a busy cluster.
             "--watch-cache=false", "--etcd-compaction-interval=0",
             "--enable-priority-and-fairness=false",
             # No "kubernetes" Service endpoints: the advertised address is loopback.
             "--endpoint-reconciler-type=none",
             "--v=1"],
            stdout=api_log, stderr=subprocess.STDOUT))
        self._wait(lambda: self._ready(), "kube-apiserver", d / "apiserver.log", timeout=120)
        # What the agent may do: exactly the chart's ClusterRole, bound to its token's user.
        role = next(o for o in helm_template() if o["kind"] == "ClusterRole")
        role["metadata"] = {"name": "hoptrace-agent"}
        self.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
        self.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "hoptrace-agent"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "hoptrace-agent"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": AGENT_USER}]})
        return self

    def _wait(self, ready, what, log, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.procs):
                pytest.fail(f"{what} exited:\n{Path(log).read_text()[-4000:]}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"{what} not ready in {timeout}s:\n{Path(log).read_text()[-4000:]}")

    def _ready(self):
        try:
            return self.request("GET", "/readyz")[0] == 200
        except (urllib.error.URLError, ConnectionError, ssl.SSLError):
            return False

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)

    # -- etcd -------------------------------------------------------------
    def _etcd(self, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.etcd_port}{path}",
                                     data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, ConnectionError):
            return None

    def compact(self):
        """Compacts etcd to its current revision: every older resourceVersion
        is gone, as hours of changes on a real cluster make it."""
        rev = int(self._etcd("/v3/kv/range", {"key": _b64("x")})["header"]["revision"])
        self._etcd("/v3/kv/compaction", {"revision": str(rev), "physical": True})
        return rev

    # -- the API ----------------------------------------------------------
    def request(self, method, path, body=None, token=ADMIN_TOKEN, content_type=None):
        ctx = ssl.create_default_context(cafile=str(self.dir / "ca.crt"))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", content_type or "application/json")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                return r.status, _body(r.read())
        except urllib.error.HTTPError as e:
            return e.code, _body(e.read())

    def create(self, path, obj):
        status, out = self.request("POST", path, obj)
        assert status == 201, f"POST {path}: {status} {out}"
        return out

    def set_pod_status(self, namespace, name, containers):
        """Writes status.containerStatuses as the kubelet would: containers is
        [(name, "containerd://<id>")]."""
        statuses = [{"name": n, "containerID": cid, "ready": True, "restartCount": 0,
                     "image": "test:1", "imageID": "", "state": {"running": {}}}
                    for n, cid in containers]
        status, out = self.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status",
            {"status": {"phase": "Running", "containerStatuses": statuses}},
            content_type="application/merge-patch+json")
        assert status == 200, f"pod status {name}: {status} {out}"
        return out

    def delete(self, path):
        status, out = self.request("DELETE", path + "?gracePeriodSeconds=0")
        assert status in (200, 202), f"DELETE {path}: {status} {out}"


def _body(data):
    """JSON when it is (API objects), text otherwise (/readyz)."""
    try:
        return json.loads(data or b"null")
    except ValueError:
        return data.decode(errors="replace")


def _b64(s):
    return base64.b64encode(s.encode()).decode()


def pod_manifest(name, namespace, node, containers, labels=None, annotations=None,
                 owner=None):
    """A Pod bound to node (no scheduler needed). owner: the controller's
    object (a dict from the API, with kind, metadata.name and metadata.uid)."""
    meta = {"name": name, "namespace": namespace, "labels": labels or {},
            "annotations": annotations or {}}
    if owner is not None:
        meta["ownerReferences"] = [{
            "apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "automountServiceAccountToken": False,
                     "containers": [{"name": c, "image": "test:1"} for c in containers]}}

