"""OTLP export when the collector misbehaves: absent, killed and restarted,
slow, failing, refusing part of a batch. The agent must keep tracing, stay
within its memory bounds, retry what the OTLP specification says is
retryable (and honour the delay the server asks for), and account for every
span exactly: on /metrics, produced = exported + dropped, and the collector
received exactly what the agent says it exported.

One traced Python service in a network namespace, a client in another; the
receiver (tests/integration/otlp/receiver.js) and the agent's /metrics on
127.0.0.1. Once a collector is (back) up, spans must reach it within
RECOVERY_S (8 s) whatever the outage lasted, so reconnect back-off must be
bounded.

The outage in test_collector_killed_and_restarted lasts about 5 s by
default, so the suite stays fast; HOPTRACE_LONG_TESTS=1 makes it 60 s (long
enough for gRPC reconnect backoff and retry budgets to matter)."""
import os
import time

import pytest

from otlp.harness import Load, free_port, vm_rss_kb, wait_metrics

LONG = os.environ.get("HOPTRACE_LONG_TESTS") == "1"
OUTAGE_S = 60 if LONG else 5
# Once the collector is back, spans must reach it again within this long,
# whatever the outage lasted: the agent caps gRPC reconnect back-off at 5 s
# (+20% jitter), plus a probe period (0.5 s) and a batch delay (0.1 s).
RECOVERY_S = 8
PROTOCOLS = ["grpc", "http/protobuf"]
URL = "http://10.212.1.2:8080/hello"


def single(topo):
    c, a = topo.ns("c"), topo.ns("a")
    topo.link(c, "10.212.1.1", a, "10.212.1.2")
    return c, topo.service(a, "10.212.1.2", 8080, "svc")


def start_agent(agent_factory, svc, receiver, protocol, outputs=("otlp",), **env):
    metrics = f"127.0.0.1:{free_port()}"
    full_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint(protocol),
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",  # ms
                "OTEL_BSP_SCHEDULE_DELAY": "100"}
    full_env.update(env)
    agent = agent_factory("--pid", str(svc.pid), "--metrics-address", metrics,
                          outputs=outputs, env=full_env)
    return agent, metrics


def settled(m):
    """Nothing queued or in flight: every span produced is exported or dropped."""
    return m.produced > 0 and m.produced == m.exported_otlp + m.dropped


def wait_settled(metrics, produced, timeout=60):
    m = wait_metrics(metrics, lambda m: m.produced == produced and settled(m), timeout)
    assert m.produced == produced, m
    assert settled(m), m
    return m


def accepted_span_ids(receiver):
    return [s["spanId"] for s in receiver.spans()]


def traces_received(receiver, trace_ids):
    got = {s["traceId"] for s in receiver.spans()}
    return set(trace_ids) <= got


def await_recovery(topo, ns, receiver, tmp_path, since):
    """After the collector came back at time `since`: one request every
    0.5 s until a span of one of them arrives. Returns (seconds from `since`
    to that export, trace ids sent)."""
    sent = []
    deadline = since + RECOVERY_S + 10
    while time.time() < deadline:
        sent += run_load(topo, ns, tmp_path, f"probe{len(sent)}", count=1)
        time.sleep(0.5)
        arrived = [e for e in receiver.entries() if e["accepted"] and any(
            s["traceId"] in sent for rs in e["request"]["resourceSpans"]
            for ss in rs["scopeSpans"] for s in ss["spans"])]
        if arrived:
            return arrived[0]["time_unix_ms"] / 1000 - since, sent
    return float("inf"), sent


def run_load(topo, ns, tmp_path, name, **kw):
    rows = Load(topo, ns, URL, tmp_path / f"load-{name}.txt", **kw).results()
    assert rows and all(status == 200 for _, _, status in rows), rows[:5]
    return [tid for tid, _, _ in rows]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_collector_absent_at_start(topo, receivers, agent_factory, tmp_path, protocol):
    """No collector when the agent starts: it starts anyway, traces, counts
    what it cannot deliver; once a collector comes up spans flow to it."""
    c, svc = single(topo)
    rcv = receivers(start=False, grpc_port=free_port(), http_port=free_port())
    agent, metrics = start_agent(agent_factory, svc, rcv, protocol,
                                 OTEL_BSP_MAX_QUEUE_SIZE="10",
                                 OTEL_BSP_MAX_EXPORT_BATCH_SIZE="5")
    before = run_load(topo, c, tmp_path, "before", count=50)
    m = wait_metrics(metrics, lambda m: m.produced == 50 and m.dropped > 0 and
                     m.export_errors > 0)
    assert m.produced == 50 and m.dropped > 0 and m.export_errors > 0, m
    assert m.exported_otlp == 0
    assert agent.proc.poll() is None

    rcv.start()
    recovery, probes = await_recovery(topo, c, rcv, tmp_path, time.time())
    assert recovery <= RECOVERY_S, \
        f"spans reached the collector {recovery:.1f} s after it came up ({protocol})"
    after = run_load(topo, c, tmp_path, "after", count=5)
    assert rcv.wait(lambda r: traces_received(r, after), timeout=10), rcv.entries()[-3:]
    m = wait_settled(metrics, 55 + len(probes))
    ids = accepted_span_ids(rcv)
    assert len(ids) == len(set(ids)), "a span was delivered twice"
    assert m.exported_otlp == len(ids)
    assert {s["traceId"] for s in rcv.spans()} <= set(before) | set(probes) | set(after)
    print(f"collector up after start: recovered in {recovery:.1f}s")
    agent.stop()
    assert agent.proc.returncode == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_collector_killed_and_restarted(topo, receiver, agent_factory, tmp_path, protocol):
    c, svc = single(topo)
    agent, metrics = start_agent(agent_factory, svc, receiver, protocol)
    first = run_load(topo, c, tmp_path, "first", count=10)
    assert receiver.wait(lambda r: traces_received(r, first), timeout=15)

    receiver.kill()
    during = run_load(topo, c, tmp_path, "during", seconds=OUTAGE_S, interval=0.05)
    m = wait_metrics(metrics, lambda m: m.export_errors > 0, timeout=15)
    assert m.export_errors > 0, m
    assert agent.proc.poll() is None

    receiver.start()  # the same ports
    recovery, probes = await_recovery(topo, c, receiver, tmp_path, time.time())
    assert recovery <= RECOVERY_S, \
        f"spans reached the collector {recovery:.1f} s after it came back ({protocol})"
    last = run_load(topo, c, tmp_path, "last", count=10)
    assert receiver.wait(lambda r: traces_received(r, last), timeout=10)
    total = len(first) + len(during) + len(probes) + len(last)
    m = wait_settled(metrics, total)
    ids = accepted_span_ids(receiver)
    assert len(ids) == len(set(ids)), "a span was delivered twice"
    # Every span is counted once, as exported or dropped. A call that waited
    # for the channel (wait_for_ready) may reach the restarted collector just
    # as its deadline passes: delivered, yet counted as a failed export. OTLP
    # is at-least-once; what the collector got can only exceed what the agent
    # counts as exported by such failures.
    assert m.exported_otlp <= len(ids) <= m.exported_otlp + m.dropped, m
    assert m.get("hoptrace_kernel_events_lost_total") == 0
    print(f"outage {OUTAGE_S}s: {len(during)} requests during it, recovered in "
          f"{recovery:.1f}s, exported {m.exported_otlp}, dropped {m.dropped}")
    agent.stop()
    assert agent.proc.returncode == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_slow_collector(topo, receiver, agent_factory, tmp_path, protocol):
    """The collector answers after 10 s, the agent's timeout is 1 s: the agent
    gives up on each attempt in time, counts the errors, keeps tracing, and
    delivers again once the collector is quick."""
    c, svc = single(topo)
    receiver.rule(count=1000, delay_ms=10000)
    agent, metrics = start_agent(agent_factory, svc, receiver, protocol)
    run_load(topo, c, tmp_path, "slow", count=20)
    assert receiver.wait(lambda r: r.entries(), timeout=10)
    first_attempt = receiver.entries()[0]["time_unix_ms"] / 1000
    # The attempt ends at the timeout (1 s), not when the collector answers (10 s).
    m = wait_metrics(metrics, lambda m: m.export_errors >= 1, timeout=10)
    assert m.export_errors >= 1 and m.exported_otlp == 0, m
    assert time.time() - first_attempt < 6, "the export attempt outlived its 1 s timeout"
    run_load(topo, c, tmp_path, "more", count=20)
    m = wait_metrics(metrics, lambda m: m.produced == 40, timeout=10)
    assert m.produced == 40, m  # capture never waits for the exporter
    assert agent.proc.poll() is None

    receiver.clear_rules()
    quick = run_load(topo, c, tmp_path, "quick", count=5)
    assert receiver.wait(lambda r: traces_received(r, quick), timeout=40)
    m = wait_settled(metrics, 45)
    assert m.export_errors >= 1
    # Spans whose attempt timed out may arrive twice (the collector answered
    # late, the agent retried); what the agent exported arrived at least once.
    assert len(set(accepted_span_ids(receiver))) >= m.exported_otlp
    agent.stop()
    assert agent.proc.returncode == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retryable_errors_are_retried_after_the_delay_asked(topo, receiver, agent_factory,
                                                            tmp_path, protocol):
    """UNAVAILABLE (with RetryInfo 1 s) / 503 with Retry-After: 1, twice: the
    same batch is sent three times, no sooner than asked, and then counted
    as exported once."""
    c, svc = single(topo)
    if protocol == "grpc":
        receiver.rule(count=2, grpc_code=14, grpc_message="busy", retry_delay_ms=1000)
    else:
        receiver.rule(count=2, http_status=503, retry_after="1")
    # Per attempt 3 s; the whole export (attempts and waits) may take 2x that.
    agent, metrics = start_agent(agent_factory, svc, receiver, protocol,
                                 OTEL_EXPORTER_OTLP_TIMEOUT="3000")
    [tid] = run_load(topo, c, tmp_path, "one", count=1)
    assert receiver.wait(lambda r: traces_received(r, [tid]), timeout=20), receiver.entries()
    entries = receiver.entries()
    assert len(entries) == 3, entries
    assert [e["accepted"] for e in entries] == [False, False, True]
    span_ids = [[s["spanId"] for rs in e["request"]["resourceSpans"]
                 for ss in rs["scopeSpans"] for s in ss["spans"]] for e in entries]
    assert span_ids[0] == span_ids[1] == span_ids[2] and len(span_ids[0]) == 1
    gaps = [(b["time_unix_ms"] - a["time_unix_ms"]) / 1000 for a, b in zip(entries, entries[1:])]
    assert all(g >= 0.9 for g in gaps), gaps
    m = wait_settled(metrics, 1)
    assert m.exported_otlp == 1 and m.dropped == 0, m
    assert m.export_errors == 2, m


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_non_retryable_error_drops_the_batch(topo, receiver, agent_factory, tmp_path,
                                            protocol):
    """INVALID_ARGUMENT / 400 are permanent: one attempt, the spans are
    dropped and counted as export_failed."""
    c, svc = single(topo)
    if protocol == "grpc":
        receiver.rule(count=1, grpc_code=3, grpc_message="bad")
    else:
        receiver.rule(count=1, http_status=400)
    agent, metrics = start_agent(agent_factory, svc, receiver, protocol)
    run_load(topo, c, tmp_path, "one", count=1)
    m = wait_settled(metrics, 1)
    assert m.get("hoptrace_spans_dropped_total", reason="export_failed", exporter="otlp") == 1, m
    assert m.exported_otlp == 0 and m.export_errors == 1, m
    time.sleep(2.5)  # a retry, if any, would come by now
    assert len(receiver.entries()) == 1
    # The next batch goes through: one bad answer does not stop the exporter.
    [tid] = run_load(topo, c, tmp_path, "two", count=1)
    assert receiver.wait(lambda r: traces_received(r, [tid]), timeout=15)
    wait_settled(metrics, 2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_partial_success_counts_rejected_spans(topo, receiver, agent_factory, tmp_path,
                                               protocol):
    c, svc = single(topo)
    receiver.rule(count=1, partial_success={"rejected_spans": 1, "error_message": "too old"})
    agent, metrics = start_agent(agent_factory, svc, receiver, protocol)
    run_load(topo, c, tmp_path, "one", count=1)
    m = wait_settled(metrics, 1)
    assert m.get("hoptrace_spans_dropped_total", reason="rejected", exporter="otlp") == 1, m
    assert m.exported_otlp == 0, m
    time.sleep(1.5)
    assert len(receiver.entries()) == 1  # partial success is not retried (OTLP spec)
    assert "too old" in agent.log_text()  # the collector's message reaches the log


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_collector_down_memory_bounded_and_drops_exact(topo, receivers, agent_factory,
                                                       tmp_path, protocol):
    """Collector down, 2000 requests, OTEL_BSP_MAX_QUEUE_SIZE=100: the agent
    holds at most queue + one batch per export consumer (4 by default, each
    with a batch in flight) of spans (the rest is dropped and
    counted), its RSS stays below 200 MB; when the collector comes up (and
    more requests are made), what it receives is exactly what /metrics calls
    exported, and produced = exported + dropped."""
    n, queue, batch, consumers = 2000, 100, 50, 4
    c, svc = single(topo)
    rcv = receivers(start=False, grpc_port=free_port(), http_port=free_port())
    agent, metrics = start_agent(agent_factory, svc, rcv, protocol,
                                 OTEL_BSP_MAX_QUEUE_SIZE=str(queue),
                                 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=str(batch),
                                 OTEL_EXPORTER_OTLP_TIMEOUT="500")
    rss0 = vm_rss_kb(agent.proc.pid)
    load = Load(topo, c, URL, tmp_path / "load.txt", count=n)
    peak = rss0
    while load.proc.poll() is None:
        peak = max(peak, vm_rss_kb(agent.proc.pid))
        time.sleep(0.1)
    rows = load.results()
    assert len(rows) == n and all(s == 200 for _, _, s in rows)
    m = wait_metrics(metrics, lambda m: m.produced == n, timeout=20)
    peak = max(peak, vm_rss_kb(agent.proc.pid))
    assert m.get("hoptrace_kernel_events_lost_total") == 0, m
    assert m.produced == n, m
    held = m.produced - m.exported_otlp - m.dropped
    assert 0 <= held <= queue + consumers * batch, m
    assert peak < 200 * 1024, f"agent RSS {peak} kB (start {rss0} kB)"

    rcv.start()
    recovery, probes = await_recovery(topo, c, rcv, tmp_path, time.time())
    assert recovery <= RECOVERY_S, \
        f"spans reached the collector {recovery:.1f} s after it came up ({protocol})"
    after = run_load(topo, c, tmp_path, "after", count=5)
    assert rcv.wait(lambda r: traces_received(r, after), timeout=10)
    total = n + len(probes) + len(after)
    m = wait_settled(metrics, total, timeout=60)
    entries = rcv.entries()
    ids = accepted_span_ids(rcv)
    assert len(ids) == len(set(ids)), "a span was delivered twice"
    # An export whose time ran out (OTEL_EXPORTER_OTLP_TIMEOUT, 500 ms: a
    # loaded machine) is counted dropped, reason export_timeout, though the
    # collector may have accepted it: delivered is exported plus at most those.
    timed_out = m.get("hoptrace_spans_dropped_total", reason="export_timeout", exporter="otlp")
    assert m.exported_otlp <= len(ids) <= m.exported_otlp + timed_out, m
    accepted = sum(e["span_count"] for e in entries if e["accepted"])
    assert accepted == len(ids), m
    # At most what was held when the collector came back, and what was sent after.
    assert 5 < m.exported_otlp <= queue + batch + len(probes) + len(after), m
    assert m.exported_otlp + m.dropped == total
    print(f"RSS start {rss0} kB, peak {peak} kB; exported {m.exported_otlp}, "
          f"dropped {m.dropped}; recovered in {recovery:.1f}s")
    agent.stop()
    assert agent.proc.returncode == 0
