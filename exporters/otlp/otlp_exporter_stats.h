// Counters of one OTLP exporter, for the agent's log lines and Prometheus metrics. Written by
// the pipeline thread inside Export(), read from any thread: relaxed atomics, because each
// counter is independent and a scrape may see one batch half-counted.
#pragma once

#include <atomic>
#include <cstdint>

namespace hoptrace {

// A plain snapshot.
struct OtlpExporterStats {
  uint64_t exports = 0;         // Export() calls (batches)
  uint64_t spans_exported = 0;  // accepted by the server (partial-success rejections excluded)
  // Spans lost, by why the batch was given up.
  uint64_t spans_failed_retries_exhausted = 0;  // every attempt failed with a retryable error
  uint64_t spans_failed_non_retryable = 0;      // e.g. INVALID_ARGUMENT, HTTP 400, TLS error
  uint64_t spans_failed_timeout = 0;            // the export's time budget ran out
  uint64_t spans_rejected = 0;                  // ExportTracePartialSuccess.rejected_spans
  uint64_t export_requests = 0;                 // RPCs / POSTs sent, retries included
  uint64_t export_errors = 0;            // requests that failed (transport error or error status)
  uint64_t last_export_latency_ns = 0;   // duration of the last Export(), retries included
  uint64_t total_export_latency_ns = 0;  // sum over all Export() calls

  uint64_t spans_failed() const {
    return spans_failed_retries_exhausted + spans_failed_non_retryable + spans_failed_timeout;
  }
};

class OtlpExporterCounters {
 public:
  OtlpExporterStats Snapshot() const {
    OtlpExporterStats s;
    s.exports = Get(exports);
    s.spans_exported = Get(spans_exported);
    s.spans_failed_retries_exhausted = Get(spans_failed_retries_exhausted);
    s.spans_failed_non_retryable = Get(spans_failed_non_retryable);
    s.spans_failed_timeout = Get(spans_failed_timeout);
    s.spans_rejected = Get(spans_rejected);
    s.export_requests = Get(export_requests);
    s.export_errors = Get(export_errors);
    s.last_export_latency_ns = Get(last_export_latency_ns);
    s.total_export_latency_ns = Get(total_export_latency_ns);
    return s;
  }

  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.fetch_add(n, std::memory_order_relaxed);
  }
  static uint64_t Get(const std::atomic<uint64_t>& counter) {
    return counter.load(std::memory_order_relaxed);
  }

  std::atomic<uint64_t> exports{0};
  std::atomic<uint64_t> spans_exported{0};
  std::atomic<uint64_t> spans_failed_retries_exhausted{0};
  std::atomic<uint64_t> spans_failed_non_retryable{0};
  std::atomic<uint64_t> spans_failed_timeout{0};
  std::atomic<uint64_t> spans_rejected{0};
  std::atomic<uint64_t> export_requests{0};
  std::atomic<uint64_t> export_errors{0};
  std::atomic<uint64_t> last_export_latency_ns{0};
  std::atomic<uint64_t> total_export_latency_ns{0};
};

}  // namespace hoptrace
