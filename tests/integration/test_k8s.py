"""Pod identity on spans, with a real Kubernetes API server.

The services are real processes in cgroups named as kubelet names them
(containerd with the systemd driver, the cgroupfs driver, CRI-O), created by
the test in the cgroup v2 hierarchy; their Pods (spec.nodeName set, container
ids in status as a kubelet writes them) and owners are written to a real
kube-apiserver over etcd (k8s_util.py). The agent runs with the chart's own
config file (its ConfigMap, rendered by helm) and only the flags that point it
at this API server and its token. Only processes of pods of that private API
server can be selected: the ones this test started.
"""
import json
import os
import re
import secrets
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import PYTHON, SERVICES, by_kind, hoptrace_bin
from k8s_util import AGENT_TOKEN, ApiServer, Relay, free_port, helm_template, pod_manifest
from propagation_util import cgroup2_root, header_values, heads, one_traceparent

NODE = "node-test"


def container_id():
    return secrets.token_hex(32)


class PodCgroups:
    """cgroup v2 directories named as kubelet names a container's, under a
    parent of this test's own; removed at the end."""

    def __init__(self):
        self.root = cgroup2_root() / f"hoptrace-test-k8s-{uuid.uuid4().hex[:8]}"
        self.root.mkdir()
        self.dirs = []

    def systemd(self, pod_uid, cid, runtime="cri-containerd"):
        u = pod_uid.replace("-", "_")
        return self._make(f"kubepods.slice/kubepods-burstable.slice/"
                          f"kubepods-burstable-pod{u}.slice/{runtime}-{cid}.scope")

    def cgroupfs(self, pod_uid, cid):
        return self._make(f"kubepods/besteffort/pod{pod_uid}/{cid}")

    def _make(self, rel):
        path = self.root / rel
        path.mkdir(parents=True)
        self.dirs.append(path)
        return path

    @staticmethod
    def preexec(path):
        def join():
            with open(path / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        return join

    def remove(self):
        # Deepest first; a directory still holding a process stays (and fails the test).
        for d in sorted(self.root.rglob("*"), key=lambda p: -len(p.parts)):
            if d.is_dir():
                for _ in range(100):
                    try:
                        d.rmdir()
                        break
                    except OSError:
                        time.sleep(0.1)
        self.root.rmdir()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = ApiServer(tmp_path_factory.mktemp("apiserver")).start()
    for ns in ("shop",):
        server.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": ns}})
    for ns in ("shop", "kube-system"):
        status, _ = server.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
        if status == 404:  # no controller manager creates it here
            server.create(f"/api/v1/namespaces/{ns}/serviceaccounts",
                          {"apiVersion": "v1", "kind": "ServiceAccount",
                           "metadata": {"name": "default"}})
    yield server
    server.stop()


@pytest.fixture
def cgroups():
    c = PodCgroups()
    yield c
    c.remove()


def chart_config(tmp_path, *helm_args):
    """The config file of the chart's ConfigMap, with default values (or those of
    helm_args, --set ...)."""
    cm = next(o for o in helm_template(*helm_args) if o["kind"] == "ConfigMap")
    path = tmp_path / "hoptrace.yaml"
    path.write_text(cm["data"]["hoptrace.yaml"])
    return path


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(hoptrace_k8s_\w+) (\S+)$", text, re.M)}


def wait_for(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def deployment_pod(api, name, deployment, replicaset, cid):
    """A Deployment, its ReplicaSet and one of its pods, linked by owner
    references as the controllers link them (no pod-template-hash label: the
    agent must read the ReplicaSet to find the Deployment)."""
    dep = api.create("/apis/apps/v1/namespaces/shop/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": deployment}},
                 "template": {"metadata": {"labels": {"app": deployment}},
                              "spec": {"containers": [{"name": "app", "image": "test:1"}]}}}})
    rs = api.create("/apis/apps/v1/namespaces/shop/replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": replicaset, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
            "uid": dep["metadata"]["uid"], "controller": True}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": deployment}},
                 "template": {"metadata": {"labels": {"app": deployment}},
                              "spec": {"containers": [{"name": "app", "image": "test:1"}]}}}})
    rs["apiVersion"], rs["kind"] = "apps/v1", "ReplicaSet"
    pod = api.create("/api/v1/namespaces/shop/pods", pod_manifest(
        name, "shop", NODE, ["app"], labels={"app": deployment}, owner=rs))
    api.set_pod_status("shop", name, [("app", f"containerd://{cid}")])
    return pod


def test_pod_identity_selection_and_watch_recovery(api, cgroups, topo, agent_factory, tmp_path):
    ns = topo.ns("pods")
    relay = Relay(api.port)
    token = tmp_path / "agent.token"
    token.write_text(AGENT_TOKEN + "\n")

    # checkout: a Deployment's pod, containerd with the systemd cgroup driver.
    checkout_cid = container_id()
    checkout = deployment_pod(api, "checkout-5f7c9-abcde", "checkout", "checkout-5f7c9",
                              checkout_cid)
    cg = cgroups.systemd(checkout["metadata"]["uid"], checkout_cid)
    topo.service(ns, "127.0.0.1", 18081, "checkout_srv", preexec_fn=cgroups.preexec(cg))

    # frontend: a StatefulSet's pod named by its app.kubernetes.io/name label,
    # cgroupfs driver.
    frontend_cid = container_id()
    sts_owner = {"apiVersion": "apps/v1", "kind": "StatefulSet",
                 "metadata": {"name": "frontend", "uid": str(uuid.uuid4())}}
    frontend = api.create("/api/v1/namespaces/shop/pods", pod_manifest(
        "frontend-0", "shop", NODE, ["web"], labels={"app.kubernetes.io/name": "storefront"},
        owner=sts_owner))
    api.set_pod_status("shop", "frontend-0", [("web", f"containerd://{frontend_cid}")])
    cg = cgroups.cgroupfs(frontend["metadata"]["uid"], frontend_cid)
    topo.service(ns, "127.0.0.1", 18080, "frontend_srv", downstream="http://127.0.0.1:18081",
                 preexec_fn=cgroups.preexec(cg))

    # payments: names itself (OTEL_SERVICE_NAME) though its pod has the
    # annotation; CRI-O.
    payments_cid = container_id()
    payments = api.create("/api/v1/namespaces/shop/pods", pod_manifest(
        "payments-x1", "shop", NODE, ["pay"],
        annotations={"resource.opentelemetry.io/service.name": "from-annotation"}))
    api.set_pod_status("shop", "payments-x1", [("pay", f"cri-o://{payments_cid}")])
    cg = cgroups.systemd(payments["metadata"]["uid"], payments_cid, runtime="crio")
    topo.service(ns, "127.0.0.1", 18082, "payments_srv", env={"OTEL_SERVICE_NAME": "payments"},
                 preexec_fn=cgroups.preexec(cg))

    # kube-system: excluded by the chart's default discovery section.
    system_cid = container_id()
    system = api.create("/api/v1/namespaces/kube-system/pods", pod_manifest(
        "coredns-1", "kube-system", NODE, ["coredns"]))
    api.set_pod_status("kube-system", "coredns-1", [("coredns", f"containerd://{system_cid}")])
    cg = cgroups.systemd(system["metadata"]["uid"], system_cid)
    topo.service(ns, "127.0.0.1", 18083, "system_srv", preexec_fn=cgroups.preexec(cg))

    # late: its process runs before the API knows its pod (selected by pid, so
    # it is traced from the start).
    late_cid = container_id()
    cg = cgroups.systemd(str(uuid.uuid4()), late_cid)
    late_proc = topo.service(ns, "127.0.0.1", 18084, "late_srv", preexec_fn=cgroups.preexec(cg))

    metrics_port = free_port()
    agent = agent_factory(
        "--config", str(chart_config(tmp_path)),
        "--k8s-api", f"https://127.0.0.1:{relay.port}", "--k8s-token-file", str(token),
        "--k8s-ca-file", str(api.dir / "ca.crt"), "--node-name", NODE,
        "--metrics-address", f"127.0.0.1:{metrics_port}", "--pid", str(late_proc.pid),
        "--no-net-probes", "--log-level", "debug")
    try:
        m = wait_for(lambda: (lambda v: v if v.get("hoptrace_k8s_pods") == 4 else None)(
            metrics(metrics_port)), 20, "4 pods in the agent's cache")
        assert m["hoptrace_k8s_lists_total"] == 1
        assert m["hoptrace_k8s_processes_selected"] == 3  # checkout, frontend, payments

        # -- identity on spans --------------------------------------------
        for _ in range(3):
            assert topo.curl(ns, "http://127.0.0.1:18080/work") == "200"
        assert topo.curl(ns, "http://127.0.0.1:18082/") == "200"
        assert topo.curl(ns, "http://127.0.0.1:18083/") == "200"
        assert topo.curl(ns, "http://127.0.0.1:18084/") == "200"

        def resources(spans, service):
            return [s["resource"]["attributes"] for s in spans
                    if s["resource"]["attributes"]["service.name"] == service]

        spans = agent.wait_spans(lambda s: len(by_kind(s, "SERVER", "checkout")) >= 3 and
                                 len(by_kind(s, "SERVER", "storefront")) >= 3 and
                                 by_kind(s, "SERVER", "payments") and
                                 by_kind(s, "SERVER", "late_srv"), timeout=20)
        r = resources(spans, "checkout")[0]
        assert r["k8s.namespace.name"] == "shop"
        assert r["k8s.pod.name"] == "checkout-5f7c9-abcde"
        assert r["k8s.pod.uid"] == checkout["metadata"]["uid"]
        assert r["k8s.container.name"] == "app"
        assert r["k8s.node.name"] == NODE
        assert r["k8s.deployment.name"] == "checkout"  # ReplicaSet -> Deployment
        assert r["k8s.replicaset.name"] == "checkout-5f7c9"
        assert r["container.id"] == checkout_cid
        r = resources(spans, "storefront")[0]
        assert r["k8s.statefulset.name"] == "frontend"
        assert r["k8s.container.name"] == "web"
        assert r["container.id"] == frontend_cid
        r = resources(spans, "payments")[0]
        assert r["k8s.pod.name"] == "payments-x1"
        assert r["container.id"] == payments_cid
        # The frontend's client span has the checkout server span as child.
        client = by_kind(spans, "CLIENT", "storefront")[0]
        child = [s for s in by_kind(spans, "SERVER", "checkout")
                 if s["trace_id"] == client["trace_id"]]
        assert child and child[0]["parent_span_id"] == client["span_id"]
        assert not resources(spans, "system_srv"), "kube-system is excluded"
        # late: no pod yet, only what its cgroup tells.
        r = resources(spans, "late_srv")[0]
        assert r["container.id"] == late_cid
        assert "k8s.pod.name" not in r

        # -- a pod that appears after its process -------------------------
        late = api.create("/api/v1/namespaces/shop/pods", pod_manifest(
            "late-1", "shop", NODE, ["late"]))
        api.set_pod_status("shop", "late-1", [("late", f"containerd://{late_cid}")])
        wait_for(lambda: metrics(metrics_port).get("hoptrace_k8s_pods") == 5, 10, "late pod")
        assert topo.curl(ns, "http://127.0.0.1:18084/") == "200"
        spans = agent.wait_spans(lambda s: by_kind(s, "SERVER", "late"), timeout=10)
        r = resources(spans, "late")[0]  # the container's name, now known
        assert r["k8s.pod.name"] == "late-1"
        assert r["k8s.pod.uid"] == late["metadata"]["uid"]
        assert r["container.id"] == late_cid

        # -- pod deletion ----------------------------------------------------
        api.delete("/api/v1/namespaces/shop/pods/late-1")
        wait_for(lambda: metrics(metrics_port).get("hoptrace_k8s_pods") == 4, 10,
                 "deleted pod gone from the cache")

        # -- a dropped watch resumes from its resourceVersion ---------------
        before = metrics(metrics_port)
        relay.cut()
        api.create("/api/v1/namespaces/shop/pods", pod_manifest("during-cut", "shop", NODE,
                                                                ["x"]))
        time.sleep(1)
        relay.restore()
        wait_for(lambda: metrics(metrics_port).get("hoptrace_k8s_pods") == 5, 20,
                 "the pod made while the watch was down")
        after = metrics(metrics_port)
        assert after["hoptrace_k8s_watches_total"] > before["hoptrace_k8s_watches_total"]
        assert after["hoptrace_k8s_relists_gone_total"] == before["hoptrace_k8s_relists_gone_total"]
        assert after["hoptrace_k8s_lists_total"] == before["hoptrace_k8s_lists_total"]

        # -- 410 Gone: the version fell out of etcd's history -> a new list ---
        relay.cut()
        orders_cid = container_id()
        orders = api.create("/api/v1/namespaces/shop/pods", pod_manifest(
            "orders-0", "shop", NODE, ["orders"]))
        api.set_pod_status("shop", "orders-0", [("orders", f"containerd://{orders_cid}")])
        api.delete("/api/v1/namespaces/shop/pods/during-cut")
        api.compact()
        cg = cgroups.systemd(orders["metadata"]["uid"], orders_cid)
        topo.service(ns, "127.0.0.1", 18085, "orders_srv", preexec_fn=cgroups.preexec(cg))
        relay.restore()
        wait_for(lambda: metrics(metrics_port).get("hoptrace_k8s_relists_gone_total", 0) >= 1,
                 30, "a relist after 410 Gone")
        # checkout, frontend, payments, late (selected once its pod came), orders
        m = wait_for(lambda: (lambda v: v if v.get("hoptrace_k8s_processes_selected") == 5
                              else None)(metrics(metrics_port)), 10, "orders selected")
        assert m["hoptrace_k8s_pods"] == 5  # during-cut gone, orders there
        assert m["hoptrace_k8s_lists_total"] == 2
        assert topo.curl(ns, "http://127.0.0.1:18085/") == "200"
        spans = agent.wait_spans(lambda s: by_kind(s, "SERVER", "orders"), timeout=10)
        assert resources(spans, "orders")[0]["k8s.pod.name"] == "orders-0"
        assert "410" in agent.log_text() or "Gone" in agent.log_text()
    finally:
        relay.stop()


def sockops_on(cgroup):
    """Names of the sockops programs attached to this cgroup directory itself (bpftool)."""
    r = subprocess.run(["bpftool", "-j", "cgroup", "show", str(cgroup)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    # bpftool names the type "sock_ops" or (libbpf's names, bpftool 7) "cgroup_sock_ops";
    # ours is ht_sockops (ht_sockops_task on kernels whose sockops lack the pid helper).
    return ["ht_sockops" if p.get("name", "").startswith("ht_sockops") else p.get("name")
            for p in json.loads(r.stdout.strip() or "[]") if "sock_ops" in p.get("attach_type", "")]


def prop_service(topo, ns, port, name, downstream, cgroup):
    """tests/integration/services/prop_service.py as `name`.py, started inside a pod's
    cgroup; it calls `downstream` on GET /work."""
    script = Path(f"/tmp/ht{topo.tag}") / f"{name}.py"
    script.parent.mkdir(exist_ok=True)
    if not script.exists():
        script.symlink_to(SERVICES / "prop_service.py")
    p = topo.start(ns, [PYTHON, str(script), "--host", "127.0.0.1", "--port", str(port),
                        "--downstream", downstream],
                   preexec_fn=PodCgroups.preexec(cgroup) if cgroup else None)
    assert p.stdout.readline().strip() == b"listening", f"{name} did not start"
    return p


def test_propagation_follows_the_pod_selection(api, cgroups, topo, agent_factory, tmp_path):
    """Chart values propagation.enabled=true (scope pods): the sockops program is
    attached to the cgroups of the selected pods' containers only, as they are found,
    and detached when their processes are gone and when the agent exits. A pod
    created after the agent is ready is selected at its process's exec (not by the
    once-a-second /proc scan) and traced from its first request."""
    ns = topo.ns("prop")
    relay = Relay(api.port)
    token = tmp_path / "agent.token"
    token.write_text(AGENT_TOKEN + "\n")
    # The sink logs the heads it gets; it is in no pod (not selected, never injected).
    sink_log = Path(f"/tmp/ht{topo.tag}") / "sink.heads.jsonl"
    script = Path(f"/tmp/ht{topo.tag}") / "sink.py"
    script.parent.mkdir(exist_ok=True)
    script.symlink_to(SERVICES / "prop_service.py")
    sink = topo.start(ns, [PYTHON, str(script), "--host", "127.0.0.1", "--port", "18290",
                           "--headers-log", str(sink_log)])
    assert sink.stdout.readline().strip() == b"listening"

    def pod(name, namespace, container, driver):
        cid = container_id()
        p = api.create(f"/api/v1/namespaces/{namespace}/pods",
                       pod_manifest(name, namespace, NODE, [container]))
        api.set_pod_status(namespace, name, [(container, f"containerd://{cid}")])
        uid = p["metadata"]["uid"]
        return cgroups.systemd(uid, cid) if driver == "systemd" else cgroups.cgroupfs(uid, cid)

    alpha_cg = pod("alpha-0", "shop", "alpha", "systemd")
    beta_cg = pod("beta-0", "shop", "beta", "cgroupfs")
    sys_cg = pod("dns-0", "kube-system", "dns", "systemd")  # excluded by the chart
    prop_service(topo, ns, 18291, "alpha", "http://127.0.0.1:18290", alpha_cg)
    beta = prop_service(topo, ns, 18292, "beta", "http://127.0.0.1:18290", beta_cg)
    prop_service(topo, ns, 18293, "dns", "http://127.0.0.1:18290", sys_cg)

    metrics_port = free_port()
    agent = agent_factory(
        "--config", str(chart_config(tmp_path, "--set", "propagation.enabled=true")),
        "--k8s-api", f"https://127.0.0.1:{relay.port}", "--k8s-token-file", str(token),
        "--k8s-ca-file", str(api.dir / "ca.crt"), "--node-name", NODE,
        # The chart's value names the host cgroup mount inside the pod; here it is the host's.
        "--propagation-cgroup-root", str(cgroup2_root()),
        "--metrics-address", f"127.0.0.1:{metrics_port}", "--no-net-probes")
    gamma_cg = None
    try:
        wait_for(lambda: metrics(metrics_port).get("hoptrace_k8s_processes_selected") == 2, 20,
                 "alpha and beta selected")
        wait_for(lambda: sockops_on(alpha_cg) and sockops_on(beta_cg), 10,
                 "sockops on the selected containers' cgroups")
        assert sockops_on(alpha_cg) == ["ht_sockops"]
        assert sockops_on(beta_cg) == ["ht_sockops"]
        assert sockops_on(sys_cg) == [], "kube-system's container is not selected"
        for parent in (cgroups.root, cgroup2_root(), alpha_cg.parent):
            assert "ht_sockops" not in sockops_on(parent), f"attached at {parent}"

        for name, port in (("alpha", 18291), ("beta", 18292), ("dns", 18293)):
            assert topo.curl(ns, f"http://127.0.0.1:{port}/work?from={name}") == "200"
        got = wait_for(lambda: (lambda h: h if len(h) >= 3 else None)(heads(sink_log)), 10,
                       "three requests at the sink")
        by_from = {re.search(r"from=(\w+)", h).group(1): h for h in got}
        one_traceparent(by_from["alpha"])
        one_traceparent(by_from["beta"])
        assert header_values(by_from["dns"], "traceparent") == [], by_from["dns"]

        # -- a pod that starts after the agent is ready: selected at exec ------------
        pods_before = metrics(metrics_port)["hoptrace_k8s_pods"]  # the module's API server's
        gamma_cg = pod("gamma-0", "shop", "gamma", "systemd")
        wait_for(lambda: metrics(metrics_port).get("hoptrace_k8s_pods") == pods_before + 1, 10,
                 "gamma's pod")
        gamma = prop_service(topo, ns, 18294, "gamma", "http://127.0.0.1:18290", gamma_cg)
        assert topo.curl(ns, "http://127.0.0.1:18294/work?from=gamma") == "200"
        spans = agent.wait_spans(lambda s: by_kind(s, "SERVER", "gamma"), timeout=10)
        assert by_kind(spans, "SERVER", "gamma"), "gamma's first request was not traced"
        assert re.search(rf"tracing pid {gamma.pid} \(.*\): exec in a selected container",
                         agent.log_text()), agent.log_text()[-3000:]
        h = wait_for(lambda: [x for x in heads(sink_log) if "from=gamma" in x], 10, "gamma")
        one_traceparent(h[0])  # its cgroup was attached at its exec, before it connected
        assert sockops_on(gamma_cg) == ["ht_sockops"]

        # -- a pod goes: its processes end, its cgroup is detached -------------------
        api.delete("/api/v1/namespaces/shop/pods/beta-0")
        beta.kill()
        beta.wait(timeout=10)
        wait_for(lambda: sockops_on(beta_cg) == [], 10, "beta's cgroup detached")
        assert sockops_on(alpha_cg) == ["ht_sockops"]
    finally:
        relay.stop()
        agent.stop()
    assert "hoptrace stopped; all programs detached" in agent.log_text()
    for cg in (alpha_cg, beta_cg, sys_cg, gamma_cg):
        if cg is not None:
            assert sockops_on(cg) == [], f"left attached at {cg}"


def test_agent_accepts_the_config_of_every_chart_value(api, tmp_path):
    """The ConfigMap rendered with every documented value set (values-all.yaml)
    is a config file `hoptrace run` accepts: it starts, reaches its API server
    and stops cleanly. Only what points it at this test's API server, and
    --no-propagation (the values name the kubepods cgroup of a real node,
    which this host has not), come from flags."""
    values = Path(__file__).resolve().parents[1] / "helm" / "values-all.yaml"
    cm = next(o for o in helm_template(values=[values]) if o["kind"] == "ConfigMap")
    config = tmp_path / "hoptrace.yaml"
    config.write_text(cm["data"]["hoptrace.yaml"])
    token = tmp_path / "agent.token"
    token.write_text(AGENT_TOKEN + "\n")
    log = tmp_path / "agent.log"
    r = subprocess.run(
        [hoptrace_bin(), "run", "--config", str(config), "--output", "none",
         "--k8s-api", api.url, "--k8s-token-file", str(token),
         "--k8s-ca-file", str(api.dir / "ca.crt"), "--node-name", NODE,
         "--metrics-address", f"127.0.0.1:{free_port()}", "--no-propagation",
         "--duration", "2"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"), timeout=60)
    text = log.read_text()
    assert r.returncode == 0, text
    assert "hoptrace ready" in text
    assert re.search(r"k8s: \d+ pod\(s\) on node node-test", text), text
    assert "hoptrace stopped; all programs detached" in text


# Where each kind of the chart is created (namespaced kinds in the release's namespace).
CHART_PATHS = {
    "ServiceAccount": "/api/v1/namespaces/tracing/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/tracing/configmaps",
    "Service": "/api/v1/namespaces/tracing/services",
    "DaemonSet": "/apis/apps/v1/namespaces/tracing/daemonsets",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def test_api_server_accepts_every_chart_object(api):
    """The real API server validates the chart's objects (defaults and every
    value) with a server-side dry run and strict field validation: unknown or
    duplicate fields, and everything its validation rejects, fail. The
    ServiceMonitor is a CRD this API server does not have (checked in
    tests/helm/test_chart.py)."""
    status, _ = api.request("GET", "/api/v1/namespaces/tracing")
    if status == 404:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "tracing"}})
    values = Path(__file__).resolve().parents[1] / "helm" / "values-all.yaml"
    for objs in (helm_template(), helm_template(values=[values])):
        created = set()
        for o in objs:
            if o["kind"] == "ServiceMonitor":
                continue
            status, out = api.request(
                "POST", CHART_PATHS[o["kind"]] + "?dryRun=All&fieldValidation=Strict", o)
            assert status == 201, f"{o['kind']} {o['metadata']['name']}: {status} {out}"
            assert out["metadata"]["name"] == o["metadata"]["name"]
            created.add(o["kind"])
        assert {"DaemonSet", "ConfigMap", "ClusterRole", "ClusterRoleBinding",
                "ServiceAccount"} <= created
    # The dry run is not vacuous: a misspelt field is refused.
    ds = next(o for o in helm_template() if o["kind"] == "DaemonSet")
    ds["spec"]["template"]["spec"]["hostPid"] = True
    status, out = api.request("POST", CHART_PATHS["DaemonSet"] +
                              "?dryRun=All&fieldValidation=Strict", ds)
    assert status == 400 and "hostPid" in out["message"], out
