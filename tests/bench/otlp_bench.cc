// OTLP export cost without the network: turning a pipeline batch (512 spans, the
// SpanPipeline default) of typical HTTP server spans with 15 attributes each into the bytes
// of an ExportTraceServiceRequest, either through libprotobuf messages (translate, serialize)
// or with the wire encoder the exporters use, and gzip on top. Reports spans/s and bytes/span.
#include <benchmark/benchmark.h>
#include <google/protobuf/arena.h>

#include <string>
#include <vector>

#include "exporters/otlp/gzip.h"
#include "exporters/otlp/otlp_translator.h"
#include "exporters/otlp/otlp_wire_encoder.h"
#include "tests/bench/bench_spans.h"

namespace hoptrace {
namespace {

constexpr size_t kBatch = 512;

std::vector<Span> TypicalBatch() { return bench::TypicalBatch(kBatch); }

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

// What the exporters do per batch before the network: the same bytes, written directly into
// the encoder's reused buffer.
void BM_OtlpWireEncode(benchmark::State& state) {
  const auto spans = TypicalBatch();
  OtlpWireEncoder encoder;
  std::string_view out;
  for (auto _ : state) {
    out = encoder.Encode(spans, "hoptrace", "0.1.0");
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * out.size());
  state.counters["bytes_per_span"] = static_cast<double>(out.size()) / kBatch;
}
BENCHMARK(BM_OtlpWireEncode);

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
