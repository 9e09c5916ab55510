"""The OTLP test tools checked on their own, without the agent: the receiver
(receiver.js) must decode what a real OpenTelemetry SDK exports, over both
transports, compressed or not, and must behave as its control endpoint tells
it; the SDK service (sdk_service.js) must produce a correct SDK trace. The
other OTLP tests trust both.

Everything runs on 127.0.0.1; no network namespace is needed."""
import json
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from otlp.harness import (KIND_CLIENT, KIND_SERVER, OTLP_DIR, STATUS_ERROR, STATUS_UNSET,
                          node_bin)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
GRPC_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.status, r.read().decode()


def post(url, body, headers=None):
    """(status, headers, body) of a POST; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_receiver_decodes_sdk_export(receiver, sdk_services, protocol, compression):
    sdk = sdk_services("sdk-front", f"http://127.0.0.1:{receiver.http_port}/control",
                       receiver.endpoint(protocol), protocol,
                       extra_env={"OTEL_EXPORTER_OTLP_COMPRESSION": compression,
                                  "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cret"})
    status, body = get(sdk.url + "/call", {"traceparent": f"00-{TRACE}-{PARENT}-01",
                                           "tracestate": "vendor=abc"})
    assert status == 200
    down_status, injected = body.split()
    assert down_status == "200"  # GET /control
    m = re.fullmatch(rf"00-{TRACE}-([0-9a-f]{{16}})-01", injected)
    assert m, injected
    client_id = m.group(1)

    spans = receiver.wait_spans(lambda s: len(s) >= 2)
    assert len(spans) == 2, spans
    entries = [e for e in receiver.entries() if e["span_count"]]
    for e in entries:
        assert e["accepted"] and "error" not in e
        assert e["compressed"] is (compression == "gzip")
        assert e["headers"]["x-api-key"] == "s3cret"
        assert e["body_bytes"] > 0
        if compression == "gzip":
            assert e["wire_bytes"] != e["body_bytes"]
        if protocol == "grpc":
            assert e["transport"] == "grpc" and e["path"] == GRPC_PATH
            assert e["headers"]["content-type"] == "application/grpc"
            assert e["headers"].get("grpc-encoding", "identity") == (
                "gzip" if compression == "gzip" else "identity")
            assert e["response"] == {"grpc_code": 0}
        else:
            assert e["transport"] == "http" and e["path"] == "/v1/traces"
            assert e["headers"]["content-type"] == "application/x-protobuf"
            assert e["response"] == {"http_status": 200}

    [srv] = [s for s in spans if s["kind"] == KIND_SERVER]
    [cli] = [s for s in spans if s["kind"] == KIND_CLIENT]
    assert srv.service == cli.service == "sdk-front"
    assert srv.resource["telemetry.sdk.language"] == "nodejs"
    assert srv.scope["name"] == "@opentelemetry/instrumentation-http"
    assert srv.scope["version"] == "0.52.1"
    # Ids are lower-case hex; the SDK joined the incoming trace.
    assert srv["traceId"] == cli["traceId"] == TRACE
    assert srv["parentSpanId"] == PARENT
    assert cli["parentSpanId"] == srv["spanId"]
    assert cli["spanId"] == client_id
    assert srv["traceState"] == cli["traceState"] == "vendor=abc"
    assert srv["name"] == "GET" and cli["name"] == "GET"
    # 64-bit integers are exact decimal strings.
    for s in (srv, cli):
        assert re.fullmatch(r"[0-9]{19}", s["startTimeUnixNano"]), s["startTimeUnixNano"]
        assert int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"])
        assert abs(int(s["startTimeUnixNano"]) - time.time_ns()) < 60 * 10**9
        assert s["flags"] == 0  # SDK 0.52 does not write Span.flags
        assert "_unknown_fields" not in s.raw
    assert int(srv["startTimeUnixNano"]) <= int(cli["startTimeUnixNano"])
    # Attribute types survive: ints as intValue, strings as stringValue.
    assert srv.attributes["http.status_code"] == 200
    assert srv.attribute_types["http.status_code"] == "intValue"
    assert srv.attributes["http.target"] == "/call"
    assert srv.attribute_types["http.target"] == "stringValue"
    assert cli.attributes["http.url"] == f"http://127.0.0.1:{receiver.http_port}/control"
    assert srv["status"]["code"] == STATUS_UNSET


def test_receiver_http_rules(receiver):
    url = f"http://127.0.0.1:{receiver.http_port}/v1/traces"
    # An empty body is a valid, empty ExportTraceServiceRequest.
    assert post(url, b"", PROTOBUF)[0] == 200

    receiver.rule(count=2, http_status=503, retry_after="1")
    for _ in range(2):
        status, headers, _ = post(url, b"", PROTOBUF)
        assert status == 503 and headers["Retry-After"] == "1"
    assert post(url, b"", PROTOBUF)[0] == 200  # the rule is used up

    receiver.rule(delay_ms=700)
    t0 = time.time()
    assert post(url, b"", PROTOBUF)[0] == 200
    assert time.time() - t0 >= 0.65

    receiver.rule(partial_success={"rejected_spans": 2, "error_message": "x"})
    status, headers, body = post(url, b"", PROTOBUF)
    assert status == 200 and headers["Content-Type"] == "application/x-protobuf"
    # ExportTraceServiceResponse{partial_success(1){rejected_spans(1)=2, error_message(2)="x"}}
    assert body == bytes([0x0A, 5, 0x08, 2, 0x12, 1]) + b"x"

    receiver.rule(transport="grpc", grpc_code=14)  # does not apply to HTTP
    assert post(url, b"", PROTOBUF)[0] == 200
    assert receiver.state()["rules"][0]["transport"] == "grpc"
    receiver.clear_rules()
    assert receiver.state()["rules"] == []

    # Bad input is answered and recorded, never fatal.
    assert post(url, b"\xff\xff\xff", PROTOBUF)[0] == 400
    assert post(url, b"junk", {**PROTOBUF, "Content-Encoding": "gzip"})[0] == 400
    assert post(url, b"{}", {"Content-Type": "application/json"})[0] == 415
    assert receiver.running()

    lines = receiver.entries()
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert [e["response"]["http_status"] for e in lines] == [
        200, 503, 503, 200, 200, 200, 200, 400, 400, 415]
    assert [e["accepted"] for e in lines] == [True, False, False, True, True, True, True,
                                              False, False, False]
    assert lines[1]["response"]["retry_after"] == "1"
    assert lines[4]["response"]["delay_ms"] == 700
    assert lines[5]["response"]["partial_success"] == {"rejected_spans": 2, "error_message": "x"}
    assert lines[7]["error"].startswith("decode failed")
    assert lines[7]["request"] is None


GRPC_CLIENT = r"""
const grpc = require("@grpc/grpc-js");
const [port, hexBody, deadlineMs] = process.argv.slice(1);
const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
const t0 = Date.now();
client.makeUnaryRequest(
  "/opentelemetry.proto.collector.trace.v1.TraceService/Export", (b) => b, (b) => b,
  Buffer.from(hexBody, "hex"), new grpc.Metadata(), {deadline: Date.now() + Number(deadlineMs)},
  (err, resp) => {
    const details = err && err.metadata ? err.metadata.get("grpc-status-details-bin") : [];
    console.log(JSON.stringify({
      code: err ? err.code : 0, details: err ? err.details : "",
      status_details_hex: details.length ? details[0].toString("hex") : "",
      response_hex: resp ? resp.toString("hex") : "", ms: Date.now() - t0}));
    client.close();
  });
"""


def grpc_call(port, body=b"", deadline_ms=10000):
    r = subprocess.run([node_bin(), "-e", GRPC_CLIENT, str(port), body.hex(), str(deadline_ms)],
                       capture_output=True, text=True, timeout=60, cwd=OTLP_DIR)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_receiver_grpc_rules(receiver):
    port = receiver.grpc_port
    assert grpc_call(port)["code"] == 0

    receiver.rule(grpc_code=14, grpc_message="busy", retry_delay_ms=1500)
    r = grpc_call(port)
    assert r["code"] == 14 and r["details"] == "busy"
    # google.rpc.Status{code=14, message="busy",
    #   details=[Any{"type.googleapis.com/google.rpc.RetryInfo", RetryInfo{Duration{1s, 5e8ns}}}]}
    type_url = b"type.googleapis.com/google.rpc.RetryInfo"
    duration = bytes([0x08, 1, 0x10]) + bytes([0x80, 0xCA, 0xB5, 0xEE, 0x01])  # 500000000
    retry_info = bytes([0x0A, len(duration)]) + duration
    any_msg = bytes([0x0A, len(type_url)]) + type_url + bytes([0x12, len(retry_info)]) + retry_info
    status = bytes([0x08, 14, 0x12, 4]) + b"busy" + bytes([0x1A, len(any_msg)]) + any_msg
    assert r["status_details_hex"] == status.hex()

    receiver.rule(delay_ms=3000)
    r = grpc_call(port, deadline_ms=500)
    assert r["code"] == 4  # DEADLINE_EXCEEDED: the client gave up, the receiver lives on
    assert r["ms"] < 2500

    receiver.rule(partial_success={"rejected_spans": 3, "error_message": "no"})
    r = grpc_call(port)
    assert r["code"] == 0
    assert r["response_hex"] == (bytes([0x0A, 6, 0x08, 3, 0x12, 2]) + b"no").hex()

    assert grpc_call(port, b"\xff\xff\xff")["code"] == 3  # INVALID_ARGUMENT
    time.sleep(3)  # the delayed answer to the abandoned call fires into a closed stream
    assert receiver.running()
    assert grpc_call(port)["code"] == 0

    lines = receiver.entries()
    assert all(e["transport"] == "grpc" and e["path"] == GRPC_PATH for e in lines)
    assert [e["response"]["grpc_code"] for e in lines] == [0, 14, 0, 0, 3, 0]
    assert [e["accepted"] for e in lines] == [True, False, True, True, False, True]
    assert lines[2]["response"]["delay_ms"] == 3000
    assert all(e["compressed"] is False for e in lines)


def test_receiver_restarts_on_same_ports(receivers):
    r = receivers()
    g, h = r.grpc_port, r.http_port
    assert post(f"http://127.0.0.1:{h}/v1/traces", b"", PROTOBUF)[0] == 200
    r.kill()
    with pytest.raises(urllib.error.URLError):
        post(f"http://127.0.0.1:{h}/v1/traces", b"", PROTOBUF)
    r.start()
    assert (r.grpc_port, r.http_port) == (g, h)
    assert post(f"http://127.0.0.1:{h}/v1/traces", b"", PROTOBUF)[0] == 200
    assert grpc_call(g)["code"] == 0
    # One file across both lives; seq restarts with the process.
    assert [e["seq"] for e in r.entries()] == [1, 1, 2]


def test_sdk_service_error_status(receiver, sdk_services):
    """A failing downstream makes an SDK CLIENT span with an error status;
    the receiver decodes status codes and messages."""
    sdk = sdk_services("sdk-err", f"http://127.0.0.1:{receiver.http_port}/nope",
                       receiver.endpoint("http/protobuf"))
    status, body = get(sdk.url + "/call")
    assert status == 200 and body.split()[0] == "405"  # GET on an export path
    spans = receiver.wait_spans(lambda s: len(s) >= 2)
    [cli] = [s for s in spans if s["kind"] == KIND_CLIENT]
    assert cli["status"]["code"] == STATUS_ERROR
    assert cli.attributes["http.status_code"] == 405
    [srv] = [s for s in spans if s["kind"] == KIND_SERVER]
    assert srv["parentSpanId"] == ""  # a root span
    assert sdk.stop() == 0


# Builds an ExportTraceServiceRequest with the 0.52 schema, then appends to
# its one span what that schema lacks: Span.flags (16, fixed32), a link with
# Link.flags (6, fixed32), and an unknown field 99; prints it as hex.
FLAGS_REQUEST = r"""
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root");
const pb = require("protobufjs/minimal");
const t = root.opentelemetry.proto.trace.v1;
const span = t.Span.encode(t.Span.fromObject({
  traceId: Buffer.from("4bf92f3577b34da6a3ce929d0e0e4736", "hex"),
  spanId: Buffer.from("00f067aa0ba902b7", "hex"), name: "GET", kind: 2,
  startTimeUnixNano: "1700000000123456789", endTimeUnixNano: "1700000000223456789",
  attributes: [{key: "n", value: {intValue: "-5"}}, {key: "b", value: {bytesValue: Buffer.from([1, 171])}}],
})).finish();
const link = pb.Writer.create();
link.uint32(10).bytes(Buffer.from("0af7651916cd43dd8448eb211c80319c", "hex"));
link.uint32(18).bytes(Buffer.from("b7ad6b7169203331", "hex"));
link.uint32(53).fixed32(0x101);
const extra = pb.Writer.create();
extra.uint32(13 << 3 | 2).bytes(link.finish());
extra.uint32(16 << 3 | 5).fixed32(0x301);
extra.uint32(99 << 3 | 0).uint64(7);
const fullSpan = Buffer.concat([span, extra.finish()]);
const ss = pb.Writer.create(); ss.uint32(18).bytes(fullSpan);
const rs = pb.Writer.create(); rs.uint32(18).bytes(ss.finish());
const req = pb.Writer.create(); req.uint32(10).bytes(rs.finish());
console.log(Buffer.from(req.finish()).toString("hex"));
"""


def test_receiver_reads_fields_newer_than_its_schema(receiver):
    r = subprocess.run([node_bin(), "-e", FLAGS_REQUEST], capture_output=True, text=True,
                       timeout=30, cwd=OTLP_DIR)
    assert r.returncode == 0, r.stderr
    body = bytes.fromhex(r.stdout.strip())
    url = f"http://127.0.0.1:{receiver.http_port}/v1/traces"
    assert post(url, body, PROTOBUF)[0] == 200
    [span] = receiver.spans()
    assert span["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span["spanId"] == "00f067aa0ba902b7"
    assert span["parentSpanId"] == ""
    assert span["kind"] == KIND_SERVER
    assert span["startTimeUnixNano"] == "1700000000123456789"  # exact beyond 2**53
    assert span["flags"] == 0x301
    assert span["links"][0]["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert span["links"][0]["flags"] == 0x101
    assert span["_unknown_fields"] == [99]
    assert span.attributes == {"n": -5, "b": bytes([1, 171])}
    assert span.attribute_types == {"n": "intValue", "b": "bytesValue"}
