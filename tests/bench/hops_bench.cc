// Per-span cost of the network half in the agent: the network attributes
// BuildHttpSpan adds, pairing a CLIENT span with its SERVER span (with and
// without the hop table behind `hoptrace hops`), and what the extra
// attributes cost the JSON-lines exporter. The kernel side is measured end
// to end by tests/bench/wrk_overhead.sh --bpf-stats.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <sys/socket.h>

#include "agent/hops/hop_joiner.h"
#include "agent/protocols/http1/protocol.h"
#include "agent/trace/span_builder.h"
#include "agent/hops/network_attributes.h"
#include "exporters/console/span_json.h"

namespace hoptrace {
namespace {

ConnInfo Conn(int fd) {
  ConnInfo c;
  c.id = ConnId{100, fd, 42};
  c.tuple_known = true;
  c.family = AF_INET;
  inet_pton(AF_INET, "10.0.1.1", c.local_addr.data());
  inet_pton(AF_INET, "10.0.2.2", c.remote_addr.data());
  c.local_port = 50000;
  c.remote_port = 9090;
  c.kernel_role = HT_ROLE_CLIENT;
  return c;
}

http1::Record HttpRecord() {
  http1::Record r;
  r.request.method = "GET";
  r.request.target = "/api/v2/items?page=3";
  // Static storage, as a hand-filled Message's views must be (http1/types.h).
  static constexpr http1::HeaderField kHeaders[] = {{"host", "catalog:9090"},
                                                    {"user-agent", "curl/7.88"}};
  r.request.headers = kHeaders;
  r.request.first_byte_ts_enter = 1'000'000;
  r.request.first_byte_ts_exit = 1'002'000;
  r.request.last_byte_ts_exit = 1'002'000;
  http1::Message resp;
  resp.type = http1::MessageType::kResponse;
  resp.status_code = 200;
  resp.content_length = 64;
  resp.last_byte_ts_exit = 3'000'000;
  r.response = resp;
  return r;
}

void FeedSample(NetworkFacts* facts, const ConnInfo& c) {
  ht_tcp_event ev{};
  ev.hdr.type = HT_EV_TCP_STATS;
  ev.hdr.pid = c.id.pid;
  ev.hdr.fd = c.id.fd;
  ev.hdr.conn_gen = c.id.gen;
  ev.hdr.ts_enter_ns = ev.hdr.ts_exit_ns = 999'000;
  ev.srtt_us = 120;
  ev.rttvar_us = 40;
  ev.min_rtt_us = 90;
  ev.ttl = 63;
  ev.family = AF_INET;
  ev.state = 1;
  facts->OnTcpEvent(TcpEvent{&ev.hdr, &ev});
}

void BM_BuildClientSpan(benchmark::State& state) {
  const bool network = state.range(0) != 0;
  NetworkFacts facts;
  const ConnInfo conn = Conn(7);
  FeedSample(&facts, conn);
  SpanBuildOptions options;
  if (network) options.network = &facts;
  ProcessInfo process;
  process.resource = std::make_shared<Resource>();
  SpanContextRecord ctx;
  ctx.trace_id.bytes[15] = 1;
  ctx.span_id.bytes[7] = 2;
  for (auto _ : state) {
    // The record is copied into its exchange, as the stitcher moves it there.
    const Exchange exchange = http1::ToExchange(HttpRecord());
    Span span = BuildSpan(conn, /*server=*/false, exchange, ctx, std::nullopt, process, options);
    benchmark::DoNotOptimize(span);
  }
  state.SetLabel(network ? "with network facts" : "without");
}
BENCHMARK(BM_BuildClientSpan)->Arg(0)->Arg(1);

void BM_JsonLine(benchmark::State& state) {
  const bool network = state.range(0) != 0;
  NetworkFacts facts;
  const ConnInfo conn = Conn(7);
  FeedSample(&facts, conn);
  SpanBuildOptions options;
  if (network) options.network = &facts;
  ProcessInfo process;
  process.resource = std::make_shared<Resource>();
  SpanContextRecord ctx;
  ctx.trace_id.bytes[15] = 1;
  ctx.span_id.bytes[7] = 2;
  const Span span =
      BuildSpan(conn, false, http1::ToExchange(HttpRecord()), ctx, std::nullopt, process, options);
  for (auto _ : state) {
    std::string line = SpanToJsonLine(span);
    benchmark::DoNotOptimize(line);
  }
  state.SetLabel(network ? "with network attributes" : "without");
}
BENCHMARK(BM_JsonLine)->Arg(0)->Arg(1);

// One call: the SERVER span, then its CLIENT span, through the joiner.
void BM_JoinPair(benchmark::State& state) {
  const bool table_on = state.range(0) != 0;
  HopTable table;
  uint64_t n = 0;
  HopJoiner joiner(
      nullptr, table_on ? &table : nullptr, [&n](Span) { ++n; }, 0);
  auto resource = std::make_shared<Resource>();
  resource->attributes.push_back({"service.name", std::string("frontend")});
  Span client;
  client.kind = SpanKind::kClient;
  client.trace_id.bytes[15] = 1;
  client.start_unix_nano = 1000;
  client.end_unix_nano = 5000;
  client.resource = resource;
  client.attributes.push_back({"url.full", std::string("http://10.0.2.2:9090/work")});
  client.attributes.push_back({"network.peer.address", std::string("10.0.2.2")});
  client.attributes.push_back({"network.peer.port", int64_t{9090}});
  Span server = client;
  server.kind = SpanKind::kServer;
  server.start_unix_nano = 2000;
  server.end_unix_nano = 4000;
  uint64_t id = 0, now = 1;
  for (auto _ : state) {
    ++id;
    memcpy(client.span_id.bytes.data(), &id, 8);
    server.parent_span_id = client.span_id;
    ++id;
    memcpy(server.span_id.bytes.data(), &id, 8);
    client.trace_id.bytes[0] = static_cast<uint8_t>(id);
    joiner.OnSpan(server, ++now);
    joiner.OnSpan(client, ++now);
  }
  benchmark::DoNotOptimize(n);
  state.SetLabel(table_on ? "with hop table" : "no hop table");
}
BENCHMARK(BM_JoinPair)->Arg(0)->Arg(1);

}  // namespace
}  // namespace hoptrace
