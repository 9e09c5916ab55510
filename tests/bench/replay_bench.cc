// The agent's userspace cost per request, without a kernel and without
// noise: the records nginx's keep-alive traffic makes the kernel send (one
// request read, one response head + body written) replayed through the
// agent's own chain — EventReader -> ConnTracker -> HTTP/1 parser ->
// TraceStitcher -> HopJoiner (NetworkFacts) -> SpanPipeline -> sink — as
// the run loop wires it (agent/cli/agent_runner.cc).
//
// Run alone it prints ns per request (machine-dependent). Run under
// `valgrind --tool=callgrind` twice with two request counts
// (tests/bench/agent_instructions.sh does this), the difference of the
// instruction counts divided by the difference of the requests is the
// agent's instructions per request, every thread included: a figure that
// does not depend on what else runs on the machine (this box has no
// hardware counters for `perf stat -e instructions`).
//
//   ht_replay_bench [--requests N] [--connections C] [--sink none|jsonl|otlp-encode]
//                   [--out FILE]
//
// Besides wall time per request it prints cpu_ns_per_request: the CPU of
// every thread from the first replayed request until the pipeline has shut
// down (the export work included), per request.
//
// otlp-encode: each batch is encoded as the OTLP exporters send it
// (OtlpWireEncoder) and dropped: the export threads' CPU without a network.
//
// The records are built once per connection; each replay only rewrites
// their timestamps (a few stores), so the figure is the agent's.
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/connections/conn_tracker.h"
#include "agent/export/span_pipeline.h"
#include "agent/hops/hop_joiner.h"
#include "agent/hops/network_attributes.h"
#include "agent/kernel/event_reader.h"
#include "agent/process/process_registry.h"
#include "agent/trace/span_builder.h"
#include "agent/trace/trace_stitcher.h"
#include "exporters/console/jsonl_exporter.h"
#include "exporters/otlp/otlp_wire_encoder.h"
#include "socket_trace.h"

namespace hoptrace {
namespace {

// What wrk sends and nginx (1.22, a 100-byte static file) answers.
constexpr std::string_view kRequest =
    "GET /small.txt HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
constexpr std::string_view kResponseHead =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 10:43:55 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 100\r\n"
    "Last-Modified: Sun, 06 Dec 2026 10:40:00 GMT\r\nConnection: keep-alive\r\n"
    "ETag: \"6745a0b0-64\"\r\nAccept-Ranges: bytes\r\n\r\n";
// nginx writes head and body with one writev.
const std::string kResponse = std::string(kResponseHead) + std::string(99, 'x') + "\n";

struct Options {
  long requests = 100000;
  int connections = 8;
  std::string sink = "none";
  std::string out = "/dev/null";  // where jsonl goes
};

std::vector<uint8_t> ConnRecord(uint32_t type, uint32_t pid, int32_t fd, uint64_t gen,
                                uint16_t remote_port) {
  std::vector<uint8_t> rec(sizeof(ht_conn_event));
  auto* ev = reinterpret_cast<ht_conn_event*>(rec.data());
  ev->hdr.type = type;
  ev->hdr.pid = ev->hdr.tid = pid;
  ev->hdr.fd = fd;
  ev->hdr.conn_gen = gen;
  ev->role = HT_ROLE_SERVER;
  ev->protocol = HT_PROTO_HTTP1;
  ev->tuple.family = 2;  // AF_INET
  const uint8_t local[4] = {127, 0, 0, 1}, remote[4] = {127, 0, 0, 1};
  memcpy(ev->tuple.local_addr, local, 4);
  memcpy(ev->tuple.remote_addr, remote, 4);
  ev->tuple.local_port = 8080;
  ev->tuple.remote_port = remote_port;
  return rec;
}

std::vector<uint8_t> DataRecord(uint32_t pid, int32_t fd, uint64_t gen, ht_direction dir,
                                uint32_t syscall, std::string_view bytes) {
  std::vector<uint8_t> rec(sizeof(ht_data_event) + bytes.size());
  auto* ev = reinterpret_cast<ht_data_event*>(rec.data());
  ev->hdr.type = HT_EV_DATA;
  ev->hdr.pid = ev->hdr.tid = pid;
  ev->hdr.fd = fd;
  ev->hdr.conn_gen = gen;
  ev->direction = dir;
  ev->syscall = syscall;
  ev->bytes = bytes.size();
  ev->captured = static_cast<uint32_t>(bytes.size());
  memcpy(ev->payload, bytes.data(), bytes.size());
  return rec;
}

void Stamp(std::vector<uint8_t>& rec, uint64_t enter, uint64_t exit) {
  auto* hdr = reinterpret_cast<ht_event_header*>(rec.data());
  hdr->ts_enter_ns = enter;
  hdr->ts_exit_ns = exit;
}

class Dispatch : public EventHandler {
 public:
  explicit Dispatch(ConnTracker* tracker) : tracker_(tracker) {}
  void OnConnOpen(const ConnEvent& ev) override { tracker_->OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_->OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_->OnConnClose(ev); }
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent&) override {}

 private:
  ConnTracker* tracker_;
};

// CPU time of every thread of the process (the export workers too).
uint64_t CpuNs() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return uint64_t(t.tv_sec) * 1'000'000'000 + uint64_t(t.tv_nsec);
}

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Conn {
  std::vector<uint8_t> open, request, response, close;
};

// The run loop's work, and only it: tests/bench/agent_instructions.sh counts
// the instructions of this function (callgrind --toggle-collect) apart from
// the export thread, whose wake-ups depend on timing.
__attribute__((noinline)) void ReplayRequests(long requests, std::vector<Conn>* conns,
                                              EventReader* reader, SpanPipeline* pipeline,
                                              size_t max_queue, uint64_t* clock) {
  for (long i = 0; i < requests; ++i) {
    Conn& k = (*conns)[i % conns->size()];
    Stamp(k.request, *clock, *clock + 2000);
    reader->Dispatch(k.request);
    Stamp(k.response, *clock + 30000, *clock + 35000);
    reader->Dispatch(k.response);
    *clock += 40000;
    // Keep the export queue from overflowing: a replay is faster than any
    // kernel, and a drop would make the run cheaper than the real one.
    if ((i & 1023) == 1023) {
      while (pipeline->stats().queued > max_queue / 2) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }
}

// Encodes what an OTLP exporter would send, and sends nothing.
class OtlpEncodeSink : public SpanSink {
 public:
  ExportResult Export(const std::vector<Span>& spans) noexcept override {
    encoder_.Encode(spans, "hoptrace", "bench");
    return ExportResult::kSuccess;
  }

 private:
  OtlpWireEncoder encoder_;
};

int Run(const Options& o) {
  std::vector<std::unique_ptr<SpanSink>> sinks;
  if (o.sink == "jsonl") sinks.push_back(std::make_unique<JsonlExporter>(std::filesystem::path(o.out)));
  if (o.sink == "otlp-encode") sinks.push_back(std::make_unique<OtlpEncodeSink>());
  SpanPipelineOptions po;
  po.consumers = 1;
  AttributePool attribute_pool(po.max_queue, kSpanAttributeReserve);
  po.attribute_pool = &attribute_pool;  // as the agent does
  SpanPipeline pipeline(std::move(sinks), po);

  ProcessRegistry processes("bench-host");
  NetworkFacts net;
  TraceStitcherOptions so;
  so.span.monotonic_to_unix_ns = MonotonicToUnixOffsetNs();
  so.span.network = &net;
  so.span.attribute_pool = po.attribute_pool;
  uint64_t clock = 1'000'000'000;
  HopJoiner joiner(&net, nullptr, [&](Span&& s) { pipeline.Submit(std::move(s)); },
                   so.span.monotonic_to_unix_ns);
  TraceStitcher stitcher(&processes, [&](Span&& s) { joiner.OnSpan(std::move(s), clock); }, so);
  ConnTracker tracker(&stitcher);
  Dispatch dispatch(&tracker);
  EventReader reader(&dispatch);

  // Our own pid: the registry finds a real process behind the spans.
  const uint32_t pid = static_cast<uint32_t>(getpid());
  std::vector<Conn> conns;
  for (int c = 0; c < o.connections; ++c) {
    const int32_t fd = 10 + c;
    const uint64_t gen = 1000 + c;
    Conn k{ConnRecord(HT_EV_CONN_OPEN, pid, fd, gen, static_cast<uint16_t>(40000 + c)),
           DataRecord(pid, fd, gen, HT_DIR_INGRESS, HT_SYS_RECVFROM, kRequest),
           DataRecord(pid, fd, gen, HT_DIR_EGRESS, HT_SYS_WRITEV, kResponse),
           ConnRecord(HT_EV_CONN_CLOSE, pid, fd, gen, static_cast<uint16_t>(40000 + c))};
    Stamp(k.open, clock, clock + 1000);
    reader.Dispatch(k.open);
    conns.push_back(std::move(k));
  }

  const uint64_t cpu0 = CpuNs();
  const uint64_t t0 = NowNs();
  ReplayRequests(o.requests, &conns, &reader, &pipeline, po.max_queue, &clock);
  const uint64_t t1 = NowNs();
  for (Conn& k : conns) {
    Stamp(k.close, clock, clock + 1000);
    reader.Dispatch(k.close);
  }
  joiner.Flush(clock + 60'000'000'000ull);
  pipeline.Shutdown();
  const uint64_t cpu1 = CpuNs();
  const auto st = pipeline.stats();
  std::printf(
      "{\"requests\": %ld, \"connections\": %d, \"sink\": \"%s\", \"ns_per_request\": %.1f, "
      "\"cpu_ns_per_request\": %.1f, "
      "\"spans_submitted\": %llu, \"spans_exported\": %llu, \"spans_dropped\": %llu}\n",
      o.requests, o.connections, o.sink.c_str(), double(t1 - t0) / double(o.requests),
      double(cpu1 - cpu0) / double(o.requests),
      static_cast<unsigned long long>(st.submitted),
      static_cast<unsigned long long>(st.exported),
      static_cast<unsigned long long>(st.dropped_queue_full));
  return st.submitted == static_cast<uint64_t>(o.requests) && st.dropped_queue_full == 0 ? 0 : 1;
}

}  // namespace
}  // namespace hoptrace

int main(int argc, char** argv) {
  hoptrace::Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--requests") {
      o.requests = std::atol(value().c_str());
    } else if (a == "--connections") {
      o.connections = std::atoi(value().c_str());
    } else if (a == "--sink") {
      o.sink = value();
    } else if (a == "--out") {
      o.out = value();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--requests N] [--connections C] [--sink none|jsonl|otlp-encode] [--out FILE]\n", argv[0]);
      return 2;
    }
  }
  if (o.requests <= 0 || o.connections <= 0 || (o.sink != "none" && o.sink != "jsonl" && o.sink != "otlp-encode")) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  return hoptrace::Run(o);
}
