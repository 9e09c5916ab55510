// OTLP export cost without the network: translating a pipeline batch (512 spans, the
// SpanPipeline default) of typical HTTP server spans with 15 attributes each into an
// ExportTraceServiceRequest, serializing it, and gzip on top. Reports spans/s and bytes/span.
#include <benchmark/benchmark.h>
#include <google/protobuf/arena.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "exporters/otlp/gzip.h"
#include "exporters/otlp/otlp_translator.h"

namespace hoptrace {
namespace {

constexpr size_t kBatch = 512;
constexpr int kProcesses = 4;

std::vector<Span> TypicalBatch() {
  std::vector<std::shared_ptr<const Resource>> resources;
  for (int p = 0; p < kProcesses; ++p) {
    resources.push_back(std::make_shared<Resource>(Resource{{
        {"service.name", "service-" + std::to_string(p)},
        {"service.instance.id", "6f1c5b1e-8a3d-4f0e-9b7a-0c2d4e6f8a1" + std::to_string(p)},
        {"host.name", std::string("node-17.prod.example.internal")},
        {"process.pid", int64_t{10000 + p}},
        {"process.executable.name", std::string("python3")},
        {"process.command", std::string("python3 /srv/app/backend.py --port 8080")},
        {"container.id", std::string(64, 'c')},
    }}));
  }
  std::vector<Span> spans(kBatch);
  // Ids are random in real traces, and random bytes are what gzip cannot shrink.
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < kBatch; ++i) {
    Span& s = spans[i];
    for (auto& b : s.trace_id.bytes) b = static_cast<uint8_t>(rng());
    for (auto& b : s.span_id.bytes) b = static_cast<uint8_t>(rng());
    for (auto& b : s.parent_span_id.bytes) b = static_cast<uint8_t>(rng());
    s.flags = 1;
    s.kind = i % 2 ? SpanKind::kClient : SpanKind::kServer;
    s.name = "GET";
    s.start_unix_nano = 1700000000000000000ull + i * 1000003;
    s.end_unix_nano = s.start_unix_nano + 4200000 + i;
    s.attributes = {
        {"http.request.method", std::string("GET")},
        {"url.path", "/api/v1/orders/" + std::to_string(100000 + i)},
        {"url.query", std::string("user=REDACTED&page=REDACTED")},
        {"url.scheme", std::string("http")},
        {"http.response.status_code", int64_t{200}},
        {"server.address", std::string("orders.prod.svc.cluster.local")},
        {"server.port", int64_t{8080}},
        {"client.address", "10.42." + std::to_string(i % 250) + ".17"},
        {"client.port", int64_t(40000 + i)},
        {"network.peer.address", "10.42." + std::to_string(i % 250) + ".17"},
        {"network.peer.port", int64_t(40000 + i)},
        {"network.local.address", std::string("10.42.3.9")},
        {"network.local.port", int64_t{8080}},
        {"network.protocol.version", std::string("1.1")},
        {"user_agent.original", std::string("python-requests/2.31.0")},
    };
    s.resource = resources[i % kProcesses];
  }
  return spans;
}

std::string SerializedBatch(const std::vector<Span>& spans) {
  return BuildExportRequest(spans, "hoptrace", "0.1.0").SerializeAsString();
}

void BM_OtlpTranslate(benchmark::State& state) {
  const auto spans = TypicalBatch();
  for (auto _ : state) {
    google::protobuf::Arena arena;
    auto* req = google::protobuf::Arena::CreateMessage<OtlpExportRequest>(&arena);
    BuildExportRequest(spans, "hoptrace", "0.1.0", req);
    benchmark::DoNotOptimize(req);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_OtlpTranslate);

// What the exporters do per batch before the network: translate on an arena, serialize.
void BM_OtlpTranslateAndSerialize(benchmark::State& state) {
  const auto spans = TypicalBatch();
  std::string out;
  for (auto _ : state) {
    google::protobuf::Arena arena;
    auto* req = google::protobuf::Arena::CreateMessage<OtlpExportRequest>(&arena);
    BuildExportRequest(spans, "hoptrace", "0.1.0", req);
    req->SerializeToString(&out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * out.size());
  state.counters["bytes_per_span"] = static_cast<double>(out.size()) / kBatch;
}
BENCHMARK(BM_OtlpTranslateAndSerialize);

// The same without the arena, for comparison.
void BM_OtlpTranslateAndSerializeHeap(benchmark::State& state) {
  const auto spans = TypicalBatch();
  std::string out;
  for (auto _ : state) {
    out = SerializedBatch(spans);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_OtlpTranslateAndSerializeHeap);

// OTLP/HTTP with compression=gzip, on top of the above.
void BM_OtlpGzip(benchmark::State& state) {
  const std::string plain = SerializedBatch(TypicalBatch());
  std::string packed;
  for (auto _ : state) {
    GzipCompress(plain, &packed);
    benchmark::DoNotOptimize(packed.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * plain.size());
  state.counters["bytes_per_span"] = static_cast<double>(packed.size()) / kBatch;
  state.counters["ratio"] = static_cast<double>(plain.size()) / packed.size();
}
BENCHMARK(BM_OtlpGzip);

}  // namespace
}  // namespace hoptrace
