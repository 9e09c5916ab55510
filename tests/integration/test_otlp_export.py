"""OTLP export, checked against OpenTelemetry's own schema.

curl -> frontend -> backend (three network namespaces, plain Python servers)
traced by `hoptrace run --output otlp --output jsonl`, exporting to the test
receiver (tests/integration/otlp/receiver.js), which decodes every request
with the protobuf module @opentelemetry/otlp-transformer publishes — nothing
of hoptrace's own .proto files. Every field of the known span tree is
checked in the decoded OTLP, and against the JSON lines the same agent
wrote: ids, kinds, names, times, status, typed attributes, resources, scope.
Then the exporter's configuration: OTEL_* variables, flags, config file,
samplers."""
import re
import socket
import time

import pytest

from conftest import attr, by_kind
from otlp.harness import (JSONL_KIND, JSONL_STATUS, KIND_CLIENT, KIND_SERVER, STATUS_UNSET,
                          attrs, free_port, python_value_type, wait_metrics)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
GRPC_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRIC_NAMES = {"hoptrace_spans_produced_total", "hoptrace_spans_exported_total",
                "hoptrace_spans_dropped_total", "hoptrace_export_errors_total",
                "hoptrace_kernel_events_lost_total"}


def chain(topo):
    c, a, b = topo.ns("c"), topo.ns("a"), topo.ns("b")
    topo.link(c, "10.211.1.1", a, "10.211.1.2")
    topo.link(a, "10.211.2.1", b, "10.211.2.2")
    backend = topo.service(b, "10.211.2.2", 9090, "backend", sleep_ms=20,
                           env={"OTEL_SERVICE_NAME": "backend-svc"})
    frontend = topo.service(a, "10.211.1.2", 8080, "frontend", sleep_ms=10,
                            downstream="http://10.211.2.2:9090")
    return c, frontend, backend


def single(topo):
    """client namespace -> one service ("svc") in its own namespace."""
    c, a = topo.ns("c"), topo.ns("a")
    topo.link(c, "10.211.1.1", a, "10.211.1.2")
    svc = topo.service(a, "10.211.1.2", 8080, "svc")
    return c, svc


def otlp_env(endpoint, protocol, **extra):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
           "OTEL_BSP_SCHEDULE_DELAY": "200"}
    env.update(extra)
    return env


def curl_traced(topo, ns, url, flags="01", trace=TRACE):
    return topo.curl(ns, url, "-H", f"traceparent: 00-{trace}-{PARENT}-{flags}",
                     "-H", "tracestate: vendor=abc,other=1", "-H", "User-Agent: otlp-test/1")


def check_resource(otlp_resource, jsonl_resource, extra):
    """Everything the JSON lines say about the process, with the same types,
    plus the OTEL_RESOURCE_ATTRIBUTES of the agent."""
    got = {kv["key"]: kv["value"] for kv in otlp_resource["attributes"]}
    for key, value in jsonl_resource["attributes"].items():
        assert key in got, f"resource lacks {key}"
        assert python_value_type(value) in got[key], (key, value, got[key])
    decoded = attrs(otlp_resource["attributes"])
    for key, value in jsonl_resource["attributes"].items():
        assert decoded[key] == value, key
    for key, value in extra.items():
        assert decoded[key] == value, key
    assert len(decoded) == len(otlp_resource["attributes"]), "repeated resource attribute keys"
    assert otlp_resource["droppedAttributesCount"] == 0


def check_span_matches_jsonl(o, j):
    """The OTLP span o says exactly what the JSON-lines span j says."""
    assert o["traceId"] == j["trace_id"]
    assert o["spanId"] == j["span_id"]
    assert o["parentSpanId"] == j["parent_span_id"]
    assert o["traceState"] == j["trace_state"]
    assert o["flags"] & 0xFF == j["flags"]
    assert o["kind"] == JSONL_KIND[j["kind"]]
    assert o["name"] == j["name"]
    assert o["startTimeUnixNano"] == str(j["start_time_unix_nano"])
    assert o["endTimeUnixNano"] == str(j["end_time_unix_nano"])
    assert o["status"] is not None or j["status"]["code"] == "UNSET"
    status = o["status"] or {"code": 0, "message": ""}
    assert status["code"] == JSONL_STATUS[j["status"]["code"]]
    assert status["message"] == j["status"]["message"]
    assert o.attributes == j["attributes"]
    for key, value in j["attributes"].items():
        assert o.attribute_types[key] == python_value_type(value), (key, value)
    assert len(o["attributes"]) == len(j["attributes"]), "repeated attribute keys"
    assert o["droppedAttributesCount"] == 0
    assert [e["name"] for e in o["events"]] == [e["name"] for e in j["events"]]
    assert [e["timeUnixNano"] for e in o["events"]] == [
        str(e["time_unix_nano"]) for e in j["events"]]
    assert o["links"] == [] and o["droppedLinksCount"] == 0 and o["droppedEventsCount"] == 0
    assert "_unknown_fields" not in o.raw


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_chain_exported_over_otlp(topo, receiver, agent_factory, protocol, compression):
    c, frontend, backend = chain(topo)
    metrics_addr = f"127.0.0.1:{free_port()}"
    env = otlp_env(receiver.endpoint(protocol), protocol,
                   OTEL_EXPORTER_OTLP_COMPRESSION=compression,
                   OTEL_EXPORTER_OTLP_HEADERS="x-api-key=s3cret,x-tenant=team%20a",
                   OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test,owner=team%20a")
    agent = agent_factory("--pid", str(frontend.pid), "--pid", str(backend.pid),
                          "--metrics-address", metrics_addr,
                          outputs=("otlp", "jsonl"), env=env)
    assert curl_traced(topo, c, "http://10.211.1.2:8080/work?user=alice") == "200"

    jspans = agent.wait_spans(lambda s: len(s) >= 3)
    assert len(jspans) == 3, jspans
    spans = receiver.wait_spans(lambda s: len(s) >= 3)
    time.sleep(0.5)  # anything more (a duplicate) would come with the same batches
    spans = receiver.spans()
    assert len(spans) == 3, spans

    # The requests: transport, path, compression, headers.
    entries = receiver.entries()
    assert entries and all(e["accepted"] and "error" not in e for e in entries), entries
    for e in entries:
        assert e["compressed"] is (compression == "gzip")
        h = e["headers"]
        assert h["x-api-key"] == "s3cret"
        assert h["x-tenant"] == "team a"  # W3C-baggage format: values are percent-decoded
        assert "hoptrace" in h.get("user-agent", "").lower()  # OTLP spec: SHOULD identify
        if protocol == "grpc":
            assert e["transport"] == "grpc" and e["path"] == GRPC_PATH
            assert h["content-type"].startswith("application/grpc")
            if compression == "gzip":
                assert h["grpc-encoding"] == "gzip"
        else:
            assert e["transport"] == "http" and e["path"] == "/v1/traces"
            assert h["content-type"] == "application/x-protobuf"
            assert h.get("content-encoding", "identity") == (
                "gzip" if compression == "gzip" else "identity")

    # Grouping: per request, one ResourceSpans per process, one ScopeSpans "hoptrace".
    instance_of_pid = {}
    for e in entries:
        seen = set()
        for rs in e["request"]["resourceSpans"]:
            ra = attrs(rs["resource"]["attributes"])
            assert ra["process.pid"] not in seen, "two ResourceSpans for one process"
            seen.add(ra["process.pid"])
            assert instance_of_pid.setdefault(ra["process.pid"], ra["service.instance.id"]) == \
                ra["service.instance.id"]
            assert len(rs["scopeSpans"]) == 1
            scope = rs["scopeSpans"][0]["scope"]
            assert scope["name"] == "hoptrace"
            assert scope["version"], "scope without a version"
            assert rs["scopeSpans"][0]["spans"]
    assert set(instance_of_pid) == {frontend.pid, backend.pid}
    assert instance_of_pid[frontend.pid] != instance_of_pid[backend.pid]

    # The tree, from OTLP alone.
    [a_srv] = [s for s in spans if s.service == "frontend" and s["kind"] == KIND_SERVER]
    [a_cli] = [s for s in spans if s.service == "frontend" and s["kind"] == KIND_CLIENT]
    [b_srv] = [s for s in spans if s.service == "backend-svc" and s["kind"] == KIND_SERVER]
    assert {s["traceId"] for s in spans} == {TRACE}
    assert a_srv["parentSpanId"] == PARENT
    assert a_cli["parentSpanId"] == a_srv["spanId"]
    assert b_srv["parentSpanId"] == a_cli["spanId"]
    assert len({s["spanId"] for s in spans}) == 3
    assert all(re.fullmatch(r"[0-9a-f]{16}", s["spanId"]) for s in spans)
    assert a_srv["traceState"] == "vendor=abc,other=1"
    assert all(s["flags"] & 0xFF == 0x01 for s in spans)  # sampled
    assert [s["name"] for s in (a_srv, a_cli, b_srv)] == ["GET"] * 3
    assert all(s["status"] is None or s["status"]["code"] == STATUS_UNSET for s in spans)
    assert a_srv.attributes["http.response.status_code"] == 200
    assert a_srv.attribute_types["http.response.status_code"] == "intValue"
    assert a_srv.attributes["url.path"] == "/work"
    assert a_srv.attribute_types["url.path"] == "stringValue"
    assert a_srv.attributes["url.query"] == "user=REDACTED"
    assert a_srv.attributes["server.port"] == 8080
    assert a_srv.attribute_types["server.port"] == "intValue"
    assert a_srv.attributes["user_agent.original"] == "otlp-test/1"
    assert a_cli.attributes["url.full"] == "http://10.211.2.2:9090/work"
    assert b_srv.attributes["client.address"] == "10.211.2.1"
    for s in spans:
        assert int(s["startTimeUnixNano"]) < int(s["endTimeUnixNano"])
        assert abs(int(s["startTimeUnixNano"]) - time.time_ns()) < 60 * 10**9
    assert int(a_srv["startTimeUnixNano"]) <= int(a_cli["startTimeUnixNano"])
    assert int(b_srv["endTimeUnixNano"]) <= int(a_cli["endTimeUnixNano"])

    # Resources.
    extra = {"deployment.environment.name": "test", "owner": "team a"}
    assert a_srv.resource["service.name"] == "frontend"
    assert b_srv.resource["service.name"] == "backend-svc"
    assert a_srv.resource["process.pid"] == frontend.pid
    assert b_srv.resource["process.pid"] == backend.pid
    assert a_srv.resource["host.name"] == socket.gethostname()
    assert a_srv.resource["service.instance.id"]
    assert all(s.resource_raw and "intValue" in next(
        kv["value"] for kv in s.resource_raw["attributes"] if kv["key"] == "process.pid")
        for s in spans)

    # Field by field, OTLP says what the JSON lines say.
    by_id = {s["spanId"]: s for s in spans}
    for j in jspans:
        o = by_id[j["span_id"]]
        check_span_matches_jsonl(o, j)
        check_resource(o.resource_raw, j["resource"], extra)
    assert attr(by_kind(jspans, "SERVER", "frontend")[0], "url.path") == "/work"

    # Self-metrics agree.
    m = wait_metrics(metrics_addr, lambda m: m.exported_otlp >= 3)
    assert METRIC_NAMES <= m.names(), m.names()
    assert any(n.startswith("hoptrace_export_latency_seconds") for n in m.names())
    assert m.produced == 3
    assert m.exported_otlp == 3
    # The JSON-lines sink may or may not publish its own counters.
    assert all(v == 3 for ls, v in m.series("hoptrace_spans_exported_total"))
    assert m.dropped == 0 and m.export_errors == 0, m
    assert m.get("hoptrace_kernel_events_lost_total") == 0
    assert m.get("hoptrace_export_latency_seconds_count", exporter="otlp") == len(entries)
    agent.stop()
    assert agent.proc.returncode == 0


def test_traces_endpoint_is_used_as_is(topo, receiver, agent_factory):
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT wins over OTEL_EXPORTER_OTLP_ENDPOINT
    and, unlike it, gets no /v1/traces appended."""
    c, svc = single(topo)
    dead = f"http://127.0.0.1:{free_port()}"
    env = otlp_env(dead, "http/protobuf", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=(
        f"http://127.0.0.1:{receiver.http_port}/custom/traces"))
    agent_factory("--pid", str(svc.pid), outputs=("otlp",), env=env)
    assert curl_traced(topo, c, "http://10.211.1.2:8080/hello") == "200"
    spans = receiver.wait_spans(lambda s: len(s) >= 1)
    assert len(spans) == 1
    assert spans[0].entry["path"] == "/custom/traces"
    assert spans[0]["traceId"] == TRACE and spans[0].service == "svc"


def test_flags_override_environment(topo, receiver, agent_factory):
    """--otlp-* flags beat OTEL_* variables (settings.h: flags > env > file)."""
    c, svc = single(topo)
    env = otlp_env(f"http://127.0.0.1:{free_port()}", "grpc",
                   OTEL_EXPORTER_OTLP_COMPRESSION="none")
    agent_factory("--pid", str(svc.pid),
                  "--otlp-endpoint", receiver.endpoint("http/protobuf"),
                  "--otlp-protocol", "http/protobuf", "--otlp-header", "x-from=flag",
                  "--otlp-header", "x-second=2", "--otlp-compression", "gzip",
                  "--otlp-timeout-ms", "3000", outputs=("otlp",), env=env)
    assert curl_traced(topo, c, "http://10.211.1.2:8080/hello") == "200"
    spans = receiver.wait_spans(lambda s: len(s) >= 1)
    assert len(spans) == 1
    e = spans[0].entry
    assert e["transport"] == "http" and e["path"] == "/v1/traces"
    assert e["compressed"] is True
    assert e["headers"]["x-from"] == "flag" and e["headers"]["x-second"] == "2"


def test_config_file(topo, receiver, agent_factory, tmp_path):
    """Everything from a YAML file: selection, outputs, OTLP, resource, batch."""
    c, svc = single(topo)
    config = tmp_path / "hoptrace.yaml"
    jsonl = tmp_path / "spans-cfg.jsonl"  # what Agent(name="cfg") reads
    config.write_text(f"""
select:
  pids: [{svc.pid}]
output: [otlp, jsonl]
output_file: {jsonl}
otlp:
  endpoint: {receiver.endpoint("grpc")}
  protocol: grpc
  compression: gzip
  headers:
    x-from: file
    x-spaced: a b
resource:
  attributes:
    deployment.environment.name: from-file
batch:
  schedule_delay_ms: 200
""")
    agent = agent_factory("--config", str(config), outputs=(), env={}, name="cfg")
    assert curl_traced(topo, c, "http://10.211.1.2:8080/hello") == "200"
    spans = receiver.wait_spans(lambda s: len(s) >= 1)
    assert len(spans) == 1
    e = spans[0].entry
    assert e["transport"] == "grpc" and e["compressed"] is True
    assert e["headers"]["x-from"] == "file" and e["headers"]["x-spaced"] == "a b"
    assert spans[0].resource["deployment.environment.name"] == "from-file"
    assert spans[0]["traceId"] == TRACE
    assert agent.out == jsonl
    [j] = agent.wait_spans(lambda s: len(s) >= 1)
    assert j["span_id"] == spans[0]["spanId"]


def test_parentbased_ratio_zero_follows_incoming_sampled_flag(topo, receiver, agent_factory):
    """parentbased_traceidratio with ratio 0: a trace whose caller sampled it
    (flags 01) is exported, whole; one the caller did not sample (00) and one
    with no caller (a root) are not, not even in part."""
    c, frontend, backend = chain(topo)
    env = otlp_env(receiver.endpoint("http/protobuf"), "http/protobuf",
                   OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    agent = agent_factory("--pid", str(frontend.pid), "--pid", str(backend.pid),
                          outputs=("otlp", "jsonl"), env=env)
    unsampled = "11111111111111111111111111111111"
    sampled = "22222222222222222222222222222222"
    url = "http://10.211.1.2:8080/work"
    assert curl_traced(topo, c, url, flags="00", trace=unsampled) == "200"
    assert topo.curl(c, url) == "200"  # root
    # Last, so once it has arrived the two before were decided (one queue, in order).
    assert curl_traced(topo, c, url, flags="01", trace=sampled) == "200"
    spans = receiver.wait_spans(lambda s: len(s) >= 3)
    time.sleep(1.0)
    spans = receiver.spans()
    assert len(spans) == 3, spans
    assert {s["traceId"] for s in spans} == {sampled}
    assert {(s.service, s["kind"]) for s in spans} == {
        ("frontend", KIND_SERVER), ("frontend", KIND_CLIENT), ("backend-svc", KIND_SERVER)}
    assert all(s["flags"] & 0xFF == 1 for s in spans)
    # Sampling is decided before any sink: the JSON lines hold the same.
    assert {j["trace_id"] for j in agent.spans()} == {sampled}


def test_always_off_exports_nothing(topo, receiver, agent_factory):
    c, frontend, backend = chain(topo)
    metrics_addr = f"127.0.0.1:{free_port()}"
    env = otlp_env(receiver.endpoint("grpc"), "grpc", OTEL_TRACES_SAMPLER="always_off")
    agent = agent_factory("--pid", str(frontend.pid), "--pid", str(backend.pid),
                          "--metrics-address", metrics_addr, outputs=("otlp",), env=env)
    assert curl_traced(topo, c, "http://10.211.1.2:8080/work") == "200"
    assert topo.curl(c, "http://10.211.1.2:8080/work") == "200"
    # The agent saw all six exchanges and recorded none of them.
    m = wait_metrics(metrics_addr, lambda m: m.get("hoptrace_spans_sampled_out_total") >= 6)
    assert m.get("hoptrace_spans_sampled_out_total") == 6, m
    assert m.produced == 0
    time.sleep(1.0)  # > OTEL_BSP_SCHEDULE_DELAY
    assert receiver.entries() == []
    assert agent.proc.poll() is None
