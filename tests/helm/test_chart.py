"""The Helm chart helm/hoptrace: lint, render with the default values and with
every value set (values-all.yaml), validate every rendered object against the
Kubernetes API's own schemas (OpenAPI v3 of Kubernetes 1.37, strict), and check
what the objects say: privileges, host mounts, environment, probes, RBAC, the
config file. The config file itself is run by the agent in
tests/integration/test_k8s.py (`hoptrace run --config` on the ConfigMap).

helm and the OpenAPI documents come from scripts/k8s_tools.sh (setup.sh --tests).
Run with Debian's /usr/bin/python3 -m pytest.
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
from k8s_util import CHART, K8S_VERSION, TOOLS, helm_template, tool  # noqa: E402
from k8s_schema import Schemas  # noqa: E402

ALL = HERE / "values-all.yaml"
# Kinds that are not part of Kubernetes itself (CRDs): checked by hand below.
NOT_CORE = {("monitoring.coreos.com/v1", "ServiceMonitor")}


@pytest.fixture(scope="module")
def schemas():
    d = TOOLS / f"openapi-{K8S_VERSION}"
    if not d.is_dir():
        pytest.fail(f"{d} is missing: run scripts/setup.sh --tests (scripts/k8s_tools.sh)")
    return Schemas(d)


def kinds(objs):
    return {o["kind"]: o for o in objs}


def container(objs):
    return kinds(objs)["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]


def env_of(c):
    return {e["name"]: e for e in c["env"]}


def config_of(objs):
    return yaml.safe_load(kinds(objs)["ConfigMap"]["data"]["hoptrace.yaml"])


def test_lint_defaults_and_every_value():
    for extra in ([], ["-f", str(ALL)]):
        r = subprocess.run([tool("helm"), "lint", "--strict", "--kube-version", K8S_VERSION,
                            str(CHART)] + extra,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 chart(s) linted, 0 chart(s) failed" in r.stdout


def test_schema_rejects_unknown_and_wrong_values():
    for bad in (["--set", "propagaton.enabled=true"], ["--set", "otlp.protocol=udp"],
                ["--set", "metrics.port=70000"], ["--set", "logLevel=loud"]):
        r = subprocess.run([tool("helm"), "template", "x", str(CHART), "--kube-version",
                            K8S_VERSION] + bad,
                           capture_output=True, text=True)
        assert r.returncode != 0, f"{bad} was accepted"
        assert "values don't meet the specifications of the schema" in r.stderr, r.stderr


@pytest.mark.parametrize("values", [[], [ALL]], ids=["defaults", "every-value"])
def test_rendered_objects_are_valid_kubernetes(schemas, values):
    objs = helm_template(values=values)
    problems, checked = [], 0
    for o in objs:
        if (o["apiVersion"], o["kind"]) in NOT_CORE:
            continue
        assert schemas.knows(o), f"{o['apiVersion']} {o['kind']} is not in Kubernetes 1.37"
        problems += schemas.errors(o)
        checked += 1
    assert not problems, "\n".join(problems)
    expected = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"}
    if values:
        expected.add("Service")  # the ServiceMonitor's
    assert {o["kind"] for o in objs} - {"ServiceMonitor"} == expected
    assert checked == len(expected)


def test_validator_catches_what_it_should(schemas):
    """The strict validation is not vacuous: a misspelt field and a wrong type fail."""
    ds = kinds(helm_template())["DaemonSet"]
    ds["spec"]["template"]["spec"]["hostPid"] = True
    assert any("hostPid" in e for e in schemas.errors(ds))
    ds = kinds(helm_template())["DaemonSet"]
    ds["spec"]["template"]["spec"]["hostPID"] = "yes"
    assert schemas.errors(ds)


def test_default_daemonset_least_privilege():
    objs = helm_template()
    ds = kinds(objs)["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is False
    assert pod["serviceAccountName"] == "hoptrace"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    c = container(objs)
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"],
                                  "add": ["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE",
                                          "SYS_RESOURCE"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsUser"] == 0
    assert sc["seccompProfile"] == {"type": "Unconfined"}
    # Host paths: tracefs and the cgroup hierarchy, read-only; nothing else from the host.
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {"tracefs": "/sys/kernel/tracing", "host-cgroup": "/sys/fs/cgroup"}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert set(mounts) == {"config", "tracefs", "host-cgroup"}
    assert all(m["readOnly"] for m in mounts.values())
    assert mounts["host-cgroup"]["mountPath"] == "/host/sys/fs/cgroup"
    assert c["args"] == ["run", "--config", "/etc/hoptrace/hoptrace.yaml"]
    assert c["image"] == "hoptrace/hoptrace:0.1.0"
    assert c["resources"]["limits"]["memory"] == "512Mi"


def test_default_environment_and_probes():
    c = container(helm_template())
    env = env_of(c)
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    # The node's collector by default; $(HOST_IP) is expanded by the kubelet.
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://$(HOST_IP):4317"
    names = [e["name"] for e in c["env"]]
    assert names.index("HOST_IP") < names.index("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]


def test_rbac_is_read_only_and_minimal():
    objs = helm_template()
    role = kinds(objs)["ClusterRole"]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"])
             for r in role["rules"]}
    assert rules == {(("",), ("pods",)): {"get", "list", "watch"},
                     (("apps",), ("replicasets",)): {"get"},
                     (("batch",), ("jobs",)): {"get"}}
    binding = kinds(objs)["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hoptrace",
                                    "namespace": "tracing"}]
    assert "Role" not in kinds(objs) and "Secret" not in kinds(objs)


def test_default_config_traces_every_pod_but_its_own_and_kube_system_read_only():
    cfg = config_of(helm_template())
    assert cfg["discovery"]["include"] == [{"namespace": "*"}]
    assert {"namespace": "kube-system"} in cfg["discovery"]["exclude"]
    assert {"namespace": "tracing", "workload": "hoptrace"} in cfg["discovery"]["exclude"]
    assert cfg["propagation"] == {"enabled": False}
    assert cfg["kubernetes"] == {"enabled": True}
    assert cfg["output"] == ["otlp"]
    assert cfg["metrics"] == {"address": "0.0.0.0:9464"}
    assert "endpoint" not in cfg["otlp"]  # from the environment (the node's IP)
    assert "select" not in cfg, "no host-wide selection: pods only"


def test_propagation_is_one_value_away_and_scoped_to_the_selected_pods():
    cfg = config_of(helm_template("--set", "propagation.enabled=true"))
    # The selected containers' own cgroups, found in the host cgroup mount.
    assert cfg["propagation"] == {"enabled": True, "scope": "pods",
                                  "cgroup_root": "/host/sys/fs/cgroup"}
    cfg = config_of(helm_template("--set", "propagation.enabled=true",
                                  "--set", "propagation.scope=cgroup"))
    assert cfg["propagation"] == {"enabled": True, "scope": "cgroup",
                                  "cgroup": "/host/sys/fs/cgroup/kubepods.slice"}


def test_every_value_arrives_where_it_belongs():
    objs = helm_template(values=[ALL])
    k = kinds(objs)
    ds = k["DaemonSet"]
    assert ds["metadata"]["name"] == "node-tracer"
    pod = ds["spec"]["template"]["spec"]
    c = container(objs)
    assert c["image"] == "registry.example.com/obs/hoptrace:9.9.9"
    assert c["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["serviceAccountName"] == "tracer-sa"
    assert k["ServiceAccount"]["metadata"]["annotations"] == {"owner": "observability"}
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "tracing": "on"}
    assert pod["affinity"]["nodeAffinity"]
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "10%"
    meta = ds["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "observability"
    assert meta["annotations"]["team"] == "observability"
    sc = c["securityContext"]
    assert sc["capabilities"]["add"] == ["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "SYS_ADMIN"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["appArmorProfile"] == {"type": "Localhost", "localhostProfile": "hoptrace"}
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {"tracefs": "/sys/kernel/debug/tracing", "host-cgroup": "/sys/fs/cgroup/unified"}
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    env = env_of(c)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4318"
    assert env["OTEL_BSP_MAX_QUEUE_SIZE"]["value"] == "4096"
    assert c["ports"][0]["containerPort"] == 9555
    assert c["livenessProbe"]["failureThreshold"] == 5
    assert c["readinessProbe"]["periodSeconds"] == 7
    cfg = config_of(objs)
    assert cfg["log_level"] == "debug"
    assert cfg["metrics"] == {"address": "0.0.0.0:9555"}
    assert cfg["otlp"] == {"protocol": "http/protobuf", "insecure": False,
                           "headers": {"x-scope-orgid": "team1"}, "compression": "gzip"}
    assert cfg["propagation"] == {"enabled": True, "scope": "cgroup",
                                  "cgroup": "/host/sys/fs/cgroup/kubepods"}
    assert cfg["discovery"]["include"][0]["pod_labels"] == {"app.kubernetes.io/part-of": "store"}
    assert {"namespace": "monitoring"} in cfg["discovery"]["exclude"]
    assert cfg["sampler"] == {"name": "parentbased_traceidratio", "arg": 0.25}
    assert cfg["capture"] == {"payload_bytes": 2048}
    assert cfg["resource"]["attributes"] == {"deployment.environment.name": "prod"}
    svc = k["Service"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"][0]["port"] == 9555
    sm = k["ServiceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    assert sm["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]


def test_privileged_is_a_value_not_the_only_way():
    c = container(helm_template("--set", "privileged=true"))
    assert c["securityContext"]["privileged"] is True
    assert "capabilities" not in c["securityContext"]


def test_config_change_rolls_the_daemonset():
    def checksum(*args):
        objs = helm_template(*args)
        ds = kinds(objs)["DaemonSet"]
        cm = kinds(objs)["ConfigMap"]
        return ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"], cm
    a, _ = checksum()
    b, _ = checksum("--set", "logLevel=debug")
    assert a != b and len(a) == 64
    # The same values give the same checksum: no rollout without a change.
    assert checksum()[0] == a
