"""Python side of hoptrace's OTLP integration tests: the test receiver
(receiver.js) and the SDK-instrumented service (sdk_service.js) as objects,
the decoded OTLP flattened into spans, the agent's /metrics, and a load
client.

Every process here is started by the test and stopped by pid; every address
is loopback (127.0.0.1) or inside a network namespace the test created.
"""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

OTLP_DIR = Path(__file__).resolve().parent
NPM_INSTALL = "npm ci --prefix tests/integration/otlp"

KIND_SERVER, KIND_CLIENT = 2, 3
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
JSONL_STATUS = {"UNSET": STATUS_UNSET, "OK": STATUS_OK, "ERROR": STATUS_ERROR}
JSONL_KIND = {"INTERNAL": 1, "SERVER": KIND_SERVER, "CLIENT": KIND_CLIENT}


def node_bin():
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not on PATH (Node >= 18 needed for the OTLP tests)")
    if not (OTLP_DIR / "node_modules" / "@opentelemetry" / "otlp-transformer").is_dir():
        pytest.fail(f"tests/integration/otlp/node_modules is missing: run `{NPM_INSTALL}`")
    return node


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_line(proc, timeout, what):
    """First stdout line of proc within timeout (bytes, stripped)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        pytest.fail(f"{what} printed nothing in {timeout}s")
    line = proc.stdout.readline().strip()
    if not line:
        pytest.fail(f"{what} exited before it was ready (rc={proc.poll()})")
    return line.decode()


# ---------------------------------------------------------------- decoded OTLP

def any_value(v):
    """An OTLP AnyValue (as receiver.js writes it) as a Python value: int for
    intValue, str for stringValue, bool, float, list, dict, bytes."""
    if v is None:
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return attrs(v["kvlistValue"].get("values", []))
    if "bytesValue" in v:
        return bytes.fromhex(v["bytesValue"])
    return None


def value_type(v):
    """Which AnyValue member is set: "stringValue", "intValue", ..., or None."""
    for k in ("stringValue", "intValue", "boolValue", "doubleValue", "arrayValue",
              "kvlistValue", "bytesValue"):
        if v is not None and k in v:
            return k
    return None


def attrs(kvs):
    return {kv["key"]: any_value(kv.get("value")) for kv in kvs}


def attr_types(kvs):
    return {kv["key"]: value_type(kv.get("value")) for kv in kvs}


def python_value_type(value):
    """The AnyValue member a JSON-lines attribute value must be exported as."""
    if isinstance(value, bool):
        return "boolValue"
    if isinstance(value, int):
        return "intValue"
    if isinstance(value, float):
        return "doubleValue"
    return "stringValue"


class OtlpSpan:
    """One span of a received request, with its resource and scope."""

    def __init__(self, entry, resource, scope, span):
        self.entry = entry          # the receiver's line for the request
        self.resource_raw = resource
        self.resource = attrs(resource.get("attributes", []) if resource else [])
        self.scope = scope or {}
        self.raw = span
        self.attributes = attrs(span["attributes"])
        self.attribute_types = attr_types(span["attributes"])

    def __getitem__(self, key):
        return self.raw[key]

    @property
    def service(self):
        return self.resource.get("service.name")

    def __repr__(self):
        return (f"<{self.service} kind={self.raw['kind']} {self.raw['name']} "
                f"trace={self.raw['traceId']} span={self.raw['spanId']} "
                f"parent={self.raw['parentSpanId']}>")


def flatten(entries, accepted_only=True):
    out = []
    for e in entries:
        if accepted_only and not e.get("accepted"):
            continue
        for rs in (e.get("request") or {}).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    out.append(OtlpSpan(e, rs.get("resource"), ss.get("scope"), s))
    return out


# ---------------------------------------------------------------- receiver

class Receiver:
    """receiver.js on 127.0.0.1. Ports stay the same across restart()."""

    def __init__(self, workdir, grpc_port=0, http_port=0, name="receiver"):
        self.out = Path(workdir) / f"{name}.jsonl"
        self.log = Path(workdir) / f"{name}.log"
        self.grpc_port, self.http_port = grpc_port, http_port
        self.proc = None

    def start(self, timeout=20):
        assert self.proc is None or self.proc.poll() is not None, "receiver already running"
        self.proc = subprocess.Popen(
            [node_bin(), str(OTLP_DIR / "receiver.js"), "--out", str(self.out),
             "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)],
            stdout=subprocess.PIPE, stderr=open(self.log, "a"), cwd=OTLP_DIR)
        line = _read_line(self.proc, timeout, f"receiver ({self.log.read_text()})")
        word, g, h = line.split()
        assert word == "ready", line
        self.grpc_port, self.http_port = int(g), int(h)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill(self):
        """SIGKILL: the collector dies without closing anything gracefully."""
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self, timeout=20):
        self.stop()
        return self.start(timeout)

    def endpoint(self, protocol):
        port = self.grpc_port if protocol == "grpc" else self.http_port
        return f"http://127.0.0.1:{port}"

    # Control endpoint (see receiver.js).
    def _control(self, method, body=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/control", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def rule(self, **rule):
        """Queues a behaviour for the next rule['count'] requests."""
        return self._control("POST", rule)

    def clear_rules(self):
        return self._control("DELETE")

    def state(self):
        return self._control("GET")

    # What arrived.
    def entries(self):
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a line being written right now
        return out

    def spans(self, accepted_only=True):
        return flatten(self.entries(), accepted_only)

    def wait(self, pred, timeout=20):
        """Waits until pred(self) is true; returns the last value of pred."""
        deadline = time.time() + timeout
        while True:
            v = pred(self)
            if v or time.time() > deadline:
                return v
            time.sleep(0.1)

    def wait_spans(self, pred, timeout=20):
        """Waits until pred(accepted spans) is true; returns the spans."""
        deadline = time.time() + timeout
        while True:
            spans = self.spans()
            if pred(spans) or time.time() > deadline:
                return spans
            time.sleep(0.1)


# ---------------------------------------------------------------- SDK service

class SdkService:
    """sdk_service.js on 127.0.0.1, exporting to a receiver."""

    def __init__(self, workdir, name, downstream, endpoint, protocol="http/protobuf",
                 extra_env=None):
        self.log = Path(workdir) / f"sdk-{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update({"OTEL_SERVICE_NAME": name, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                    "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"})
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [node_bin(), str(OTLP_DIR / "sdk_service.js"), "--host", "127.0.0.1", "--port", "0",
             "--downstream", downstream],
            stdout=subprocess.PIPE, stderr=open(self.log, "w"), env=env, cwd=OTLP_DIR)
        line = _read_line(self.proc, 20, f"sdk_service {name}")
        word, port = line.split()
        assert word == "listening", line
        self.port = int(port)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        """SIGTERM: the SDK flushes its spans first."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


# ---------------------------------------------------------------- agent metrics

def scrape(address, timeout=5):
    """Prometheus text from http://address/metrics as [(name, labels, value)]."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout) as r:
        assert r.status == 200
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode()
    assert ctype.startswith("text/plain"), ctype
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        labels = {}
        if "{" in line:
            name, rest = line.split("{", 1)
            body, value = rest.rsplit("}", 1)
            for part in _split_labels(body):
                k, v = part.split("=", 1)
                labels[k.strip()] = json.loads(v)
        else:
            name, value = line.split(None, 1)
        samples.append((name.strip(), labels, float(value.split()[0])))
    return samples


def _split_labels(body):
    parts, cur, quoted, esc = [], "", False, False
    for ch in body:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            cur += ch
            esc = True
        elif ch == '"':
            cur += ch
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


class Metrics:
    def __init__(self, address):
        self.address = address
        self.samples = scrape(address)

    def names(self):
        return {n for n, _, _ in self.samples}

    def get(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        return sum(v for n, ls, v in self.samples
                   if n == name and all(ls.get(k) == want for k, want in labels.items()))

    def series(self, name):
        return [(ls, v) for n, ls, v in self.samples if n == name]

    @property
    def produced(self):
        return self.get("hoptrace_spans_produced_total")

    @property
    def exported_otlp(self):
        return self.get("hoptrace_spans_exported_total", exporter="otlp")

    @property
    def dropped(self):
        """Every span the pipeline or the OTLP exporter lost, whatever the reason."""
        return sum(v for ls, v in self.series("hoptrace_spans_dropped_total")
                   if ls.get("exporter", "otlp") == "otlp")

    @property
    def export_errors(self):
        return self.get("hoptrace_export_errors_total", exporter="otlp")

    def __repr__(self):
        keep = ("hoptrace_spans", "hoptrace_export", "hoptrace_kernel_events_lost")
        return "\n".join(f"{n}{ls} {v}" for n, ls, v in self.samples if n.startswith(keep))


def wait_metrics(address, pred, timeout=20):
    """Scrapes until pred(Metrics) is true; returns the last Metrics."""
    deadline = time.time() + timeout
    while True:
        m = Metrics(address)
        if pred(m) or time.time() > deadline:
            return m
        time.sleep(0.2)


def vm_rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- load client

# An HTTP client for inside a network namespace: sends requests to one URL,
# each with its own sampled traceparent, either `count` of them or for
# `seconds`, `interval` apart; writes "<trace id> <start ns> <status>" per
# request (status 0 when it failed) to a file. One connection per request:
# on a kept-alive connection http_service.py's two writes per response meet
# Nagle and delayed ACKs (40 ms a request).
LOAD_CLIENT = r"""
import http.client, os, sys, time, urllib.parse
url, count, seconds, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
out = open(sys.argv[5], "w")
u = urllib.parse.urlsplit(url)
end = time.time() + seconds
n = 0
while (count and n < count) or (not count and time.time() < end):
    n += 1
    tid = os.urandom(16).hex()
    t0 = time.time_ns()
    status = 0
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    try:
        conn.request("GET", u.path or "/", headers={
            "traceparent": "00-%s-%s-01" % (tid, os.urandom(8).hex()), "Connection": "close"})
        r = conn.getresponse()
        r.read()
        status = r.status
    except Exception:
        pass
    finally:
        conn.close()
    print(tid, t0, status, file=out, flush=True)
    if interval:
        time.sleep(interval)
"""


class Load:
    """LOAD_CLIENT running in namespace ns (in the background)."""

    def __init__(self, topo, ns, url, out, count=0, seconds=0.0, interval=0.0):
        self.out = Path(out)
        self.proc = topo.start(ns, ["/usr/bin/python3", "-c", LOAD_CLIENT, url, str(count),
                                    str(seconds), str(interval), str(self.out)])

    def results(self, timeout=120):
        """Waits for the client to finish; returns [(trace id, start ns, status)]."""
        self.proc.wait(timeout=timeout)
        rows = []
        for line in self.out.read_text().splitlines():
            tid, t0, status = line.split()
            rows.append((tid, int(t0), int(status)))
        return rows
