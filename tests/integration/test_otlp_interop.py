"""hoptrace next to an OpenTelemetry SDK: spans from both, sent to the same
collector, must form one trace.

A Node service instrumented with the OpenTelemetry JS SDK
(tests/integration/otlp/sdk_service.js: NodeTracerProvider, HttpInstrumentation,
OTLP exporter) calls a plain Python service that only hoptrace traces. All
on 127.0.0.1 (the SDK and the agent both reach the receiver there); the
agent selects only the Python service, by pid."""
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import SERVICES, PYTHON, require_propagation
from otlp.harness import KIND_CLIENT, KIND_SERVER, free_port
from propagation_util import TestCgroup

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def python_service(topo, name, port, downstream="", env=None, preexec_fn=None):
    """http_service.py on 127.0.0.1 in the test's own (root) namespace."""
    script = Path(f"/tmp/ht{topo.tag}") / f"{name}.py"
    script.parent.mkdir(exist_ok=True)
    if not script.exists():
        script.symlink_to(SERVICES / "http_service.py")
    argv = [PYTHON, str(script), "--host", "127.0.0.1", "--port", str(port)]
    if downstream:
        argv += ["--downstream", downstream]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env or {})
    p = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         preexec_fn=preexec_fn)
    topo.procs.append(p)  # killed, by pid, at cleanup
    assert p.stdout.readline().strip() == b"listening", f"{name} did not start"
    return p


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.status, r.read().decode()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_sdk_caller_and_hoptrace_callee_make_one_trace(topo, receiver, sdk_services,
                                                       agent_factory, protocol):
    port = free_port()
    backend = python_service(topo, "backend", port, env={"OTEL_SERVICE_NAME": "py-backend"})
    agent_factory("--pid", str(backend.pid), outputs=("otlp",),
                  env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint(protocol),
                       "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                       "OTEL_BSP_SCHEDULE_DELAY": "200"})
    sdk = sdk_services("sdk-front", f"http://127.0.0.1:{port}/work",
                       receiver.endpoint(protocol), protocol)

    status, body = get(sdk.url + "/call", {"traceparent": f"00-{TRACE}-{PARENT}-01",
                                           "tracestate": "vendor=abc"})
    assert status == 200
    down_status, injected = body.split()
    assert down_status == "200"
    m = re.fullmatch(rf"00-{TRACE}-([0-9a-f]{{16}})-01", injected)
    assert m, injected
    sdk_client_id = m.group(1)

    spans = receiver.wait_spans(lambda s: len(s) >= 3)
    assert len(spans) == 3, spans
    [sdk_srv] = [s for s in spans if s.service == "sdk-front" and s["kind"] == KIND_SERVER]
    [sdk_cli] = [s for s in spans if s.service == "sdk-front" and s["kind"] == KIND_CLIENT]
    [ht_srv] = [s for s in spans if s.service == "py-backend"]

    # One connected trace: SDK SERVER -> SDK CLIENT -> hoptrace SERVER.
    assert {s["traceId"] for s in spans} == {TRACE}
    assert sdk_srv["parentSpanId"] == PARENT
    assert sdk_cli["parentSpanId"] == sdk_srv["spanId"]
    assert sdk_cli["spanId"] == sdk_client_id
    assert ht_srv["kind"] == KIND_SERVER
    assert ht_srv["parentSpanId"] == sdk_client_id
    assert len({s["spanId"] for s in spans}) == 3, "duplicate span ids"
    # W3C: tracestate travels with the context the SDK injected.
    assert ht_srv["traceState"] == "vendor=abc"
    assert ht_srv["flags"] & 0xFF == 1

    # Each side under its own resource and scope.
    assert ht_srv.scope["name"] == "hoptrace"
    assert sdk_cli.scope["name"] == "@opentelemetry/instrumentation-http"
    assert ht_srv.resource["process.pid"] == backend.pid
    assert "telemetry.sdk.language" in sdk_srv.resource
    assert ht_srv.attributes["url.path"] == "/work"
    assert ht_srv.attributes["http.response.status_code"] == 200
    # The server span sits inside the SDK's client span in time (one host; the
    # SDK's clock is Date.now() at its start + a monotonic offset: ms-exact).
    slack = 5_000_000
    assert int(sdk_cli["startTimeUnixNano"]) <= int(ht_srv["startTimeUnixNano"]) + slack
    assert int(ht_srv["endTimeUnixNano"]) <= int(sdk_cli["endTimeUnixNano"]) + slack
    assert sdk.stop() == 0


@pytest.fixture
def cg(topo):
    require_propagation()
    c = TestCgroup()
    yield c
    c.remove(topo.procs)


def test_hoptrace_caller_and_sdk_callee_make_one_trace(topo, cg, receiver, sdk_services,
                                                       agent_factory):
    """The reverse: a plain Python service (traced by hoptrace) calls the SDK
    service. The SDK only joins the trace if the request it receives carries
    a traceparent, which the uninstrumented caller never writes itself:
    hoptrace injects it (the caller runs in the test's own cgroup)."""
    sdk = sdk_services("sdk-back", "http://127.0.0.1:1/unused",
                       receiver.endpoint("http/protobuf"))
    port = free_port()
    front = python_service(topo, "frontend", port, downstream=sdk.url, preexec_fn=cg.preexec())
    agent_factory("--pid", str(front.pid), "--propagation-cgroup", str(cg.path),
                  outputs=("otlp",),
                  env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint("http/protobuf"),
                       "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                       "OTEL_BSP_SCHEDULE_DELAY": "200"})
    status, _ = get(f"http://127.0.0.1:{port}/work",
                    {"traceparent": f"00-{TRACE}-{PARENT}-01"})
    assert status == 200
    spans = receiver.wait_spans(lambda s: len(s) >= 3, timeout=10)
    [ht_srv] = [s for s in spans if s.service == "frontend" and s["kind"] == KIND_SERVER]
    [ht_cli] = [s for s in spans if s.service == "frontend" and s["kind"] == KIND_CLIENT]
    [sdk_srv] = [s for s in spans if s.service == "sdk-back"]
    assert ht_cli["parentSpanId"] == ht_srv["spanId"]
    assert sdk_srv["traceId"] == TRACE
    assert sdk_srv["parentSpanId"] == ht_cli["spanId"]
