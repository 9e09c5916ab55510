// The agent's own counters, published in the log and as Prometheus text.
// The capture thread owns most of the numbers; it publishes a snapshot each
// loop turn, and the metrics endpoint renders the last one.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace hoptrace {

struct ExporterCounters {
  std::string name;  // "otlp", "jsonl", "tree"
  uint64_t spans_exported = 0;
  uint64_t spans_failed = 0;    // lost: retries exhausted, not retryable
  uint64_t spans_timed_out = 0;  // the export's time ran out: the collector may have them
  uint64_t spans_rejected = 0;  // refused by the collector (partial_success)
  uint64_t export_requests = 0;
  uint64_t export_errors = 0;
  double latency_seconds_sum = 0;
  uint64_t latency_count = 0;
};

struct SelfMetricsSnapshot {
  uint64_t kernel_events = 0;
  uint64_t kernel_events_lost = 0;
  uint64_t kernel_payload_truncated = 0;
  uint64_t shed = 0;  // requests (HTTP/1) or connections not followed: overload
  uint32_t shed_keep_per_1024 = 1024;  // share of requests followed now
  uint64_t events_malformed = 0;
  uint64_t connections_tracked = 0;
  uint64_t requests_pending = 0;
  uint64_t http_orphan_responses = 0;
  uint64_t http_resyncs = 0;
  uint64_t invalid_traceparent = 0;
  uint64_t spans_produced = 0;  // handed to the pipeline
  uint64_t spans_sampled_out = 0;
  uint64_t spans_dropped_queue_full = 0;
  uint64_t spans_dropped_shutdown = 0;
  uint64_t export_queued = 0;  // spans waiting for an exporter now
  uint64_t export_queue_capacity = 0;
  std::vector<ExporterCounters> exporters;
  // Kubernetes (rendered only when the agent watches pods).
  bool k8s = false;
  uint64_t k8s_pods = 0;
  uint64_t k8s_pods_dropped = 0;
  uint64_t k8s_pods_selected = 0;  // processes selected by the discovery section
  uint64_t k8s_lists = 0;
  uint64_t k8s_watches = 0;
  uint64_t k8s_relists_gone = 0;
  uint64_t k8s_api_errors = 0;
  uint64_t k8s_watch_events = 0;
};

std::string RenderPrometheus(const SelfMetricsSnapshot& s);

class SelfMetrics {
 public:
  void Publish(SelfMetricsSnapshot snapshot) {
    std::lock_guard<std::mutex> lock(mu_);
    snapshot_ = std::move(snapshot);
  }
  SelfMetricsSnapshot Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return snapshot_;
  }
  std::string Render() const { return RenderPrometheus(Get()); }

 private:
  mutable std::mutex mu_;
  SelfMetricsSnapshot snapshot_;
};

}  // namespace hoptrace
