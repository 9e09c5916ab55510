#include "tests/bench/sink_load.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "exporters/otlp/otlp_exporter_factory.h"
#include "tests/bench/bench_spans.h"

namespace hoptrace::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct LaneResult {
  uint64_t exports = 0;
  uint64_t failed_exports = 0;
  uint64_t spans = 0;
  std::vector<double> latency_ms;  // of the counted exports
};

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  const size_t i = std::min(v->size() - 1, static_cast<size_t>(p * static_cast<double>(v->size())));
  std::nth_element(v->begin(), v->begin() + static_cast<std::ptrdiff_t>(i), v->end());
  return (*v)[i];
}

}  // namespace

int RunLoad(const LoadOptions& o) {
  OtlpExporterOptions eo;
  eo.protocol = o.protocol;
  eo.endpoint = !o.endpoint.empty()                     ? o.endpoint
                : o.protocol == OtlpProtocol::kGrpc ? "http://127.0.0.1:4317"
                                                        : "http://127.0.0.1:4318/v1/traces";
  eo.compression = o.gzip ? OtlpCompression::kGzip : OtlpCompression::kNone;
  // A failed export is a result here, not something to hide behind retries.
  eo.retry.max_attempts = 1;
  eo.scope_version = "bench";

  const int lanes = std::max(1, o.in_flight);
  std::vector<std::unique_ptr<OtlpExporterBase>> exporters;
  std::vector<std::vector<std::vector<Span>>> batches(static_cast<size_t>(lanes));
  for (int l = 0; l < lanes; ++l) {
    exporters.push_back(MakeOtlpExporter(eo));
    for (int b = 0; b < std::max(1, o.distinct_batches); ++b) {
      batches[static_cast<size_t>(l)].push_back(
          TypicalBatch(o.batch, 1000003ull * static_cast<uint64_t>(l) + static_cast<uint64_t>(b)));
    }
  }

  // Spans are built before the clock starts; every lane uses one window.
  const auto t0 = Clock::now();
  const auto window_start = t0 + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(o.warmup));
  const auto window_end = window_start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(o.seconds));
  std::vector<LaneResult> results(static_cast<size_t>(lanes));
  std::vector<std::thread> threads;
  for (int l = 0; l < lanes; ++l) {
    threads.emplace_back([&, l] {
      LaneResult& r = results[static_cast<size_t>(l)];
      const auto& mine = batches[static_cast<size_t>(l)];
      for (size_t i = 0;; ++i) {
        const auto start = Clock::now();
        if (start >= window_end) break;
        const auto& batch = mine[i % mine.size()];
        const ExportResult res = exporters[static_cast<size_t>(l)]->Export(batch);
        const auto end = Clock::now();
        // Counted when it ended inside the window: spans/s is then what the receiver took in
        // that window, give or take one export per lane at each edge.
        if (end < window_start || end > window_end) continue;
        ++r.exports;
        if (res == ExportResult::kSuccess) {
          r.spans += batch.size();
          r.latency_ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
        } else {
          ++r.failed_exports;
        }
      }
    });
  }
  std::this_thread::sleep_until(window_start);
  const double cpu0 = CpuSeconds();
  std::this_thread::sleep_until(window_end);
  const double cpu1 = CpuSeconds();
  for (auto& t : threads) t.join();

  LaneResult all;
  for (auto& r : results) {
    all.exports += r.exports;
    all.failed_exports += r.failed_exports;
    all.spans += r.spans;
    all.latency_ms.insert(all.latency_ms.end(), r.latency_ms.begin(), r.latency_ms.end());
  }
  const double sps = static_cast<double>(all.spans) / o.seconds;
  const double p50 = Percentile(&all.latency_ms, 0.50);
  const double p99 = Percentile(&all.latency_ms, 0.99);
  // The load generator's own CPU in the window: translation and serialization happen here, so
  // on a small machine it competes with the receiver for the same cores.
  const double client_cpu_pct = 100 * (cpu1 - cpu0) / o.seconds;
  const std::string proto(OtlpProtocolName(o.protocol));
  std::printf(
      "{\"protocol\":\"%s\",\"endpoint\":\"%s\",\"in_flight\":%d,\"batch\":%zu,\"gzip\":%s,"
      "\"seconds\":%.3f,\"exports\":%llu,\"failed_exports\":%llu,\"spans\":%llu,"
      "\"spans_per_s\":%.0f,\"latency_ms_p50\":%.3f,\"latency_ms_p99\":%.3f,"
      "\"client_cpu_pct\":%.1f}\n",
      proto.c_str(), eo.endpoint.c_str(), lanes, o.batch, o.gzip ? "true" : "false", o.seconds,
      static_cast<unsigned long long>(all.exports),
      static_cast<unsigned long long>(all.failed_exports),
      static_cast<unsigned long long>(all.spans), sps, p50, p99, client_cpu_pct);
  std::fflush(stdout);
  std::fprintf(stderr,
               "load %s in-flight %d batch %zu%s: %.0f spans/s accepted (%llu exports, %llu "
               "failed), export p50 %.2f ms p99 %.2f ms, load generator cpu %.0f%%\n",
               proto.c_str(), lanes, o.batch, o.gzip ? " gzip" : "", sps,
               static_cast<unsigned long long>(all.exports),
               static_cast<unsigned long long>(all.failed_exports), p50, p99, client_cpu_pct);
  return all.failed_exports == 0 && all.exports > 0 ? 0 : 1;
}

}  // namespace hoptrace::bench
