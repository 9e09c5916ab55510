#include "agent/cli/self_metrics.h"

#include <cstdio>

namespace hoptrace {
namespace {

class Writer {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void Sample(const char* name, const std::string& labels, double value) {
    char num[64];
    std::snprintf(num, sizeof(num), "%.17g", value);
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += num;
    out_ += '\n';
  }
  void One(const char* name, const char* type, const char* help, double value) {
    Family(name, type, help);
    Sample(name, "", value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string Label(const char* key, const std::string& value) {
  return std::string(key) + "=\"" + value + "\"";
}

}  // namespace

std::string RenderPrometheus(const SelfMetricsSnapshot& s) {
  Writer w;
  w.One("hoptrace_kernel_events_total", "counter", "Events read from the kernel ring buffer.",
        s.kernel_events);
  w.One("hoptrace_kernel_events_lost_total", "counter",
        "Events the kernel could not queue (ring buffer full).", s.kernel_events_lost);
  w.One("hoptrace_kernel_payload_truncated_total", "counter",
        "Syscalls that moved more bytes than were captured.", s.kernel_payload_truncated);
  w.One("hoptrace_requests_shed_total", "counter",
        "Requests (HTTP/1; connections of other protocols) the kernel did not follow because "
        "the agent could not keep up.",
        s.shed);
  w.One("hoptrace_shed_keep_ratio", "gauge",
        "Share of requests followed now (1: all; lower while shedding).",
        s.shed_keep_per_1024 / 1024.0);
  w.One("hoptrace_events_malformed_total", "counter", "Kernel records that failed to decode.",
        s.events_malformed);
  w.One("hoptrace_connections_tracked", "gauge", "Connections the agent follows now.",
        s.connections_tracked);
  w.One("hoptrace_requests_pending", "gauge", "Requests waiting for their response.",
        s.requests_pending);
  w.One("hoptrace_http_orphan_responses_total", "counter",
        "Responses with no request to pair with.", s.http_orphan_responses);
  w.One("hoptrace_http_resyncs_total", "counter",
        "Times HTTP framing was lost and found again.", s.http_resyncs);
  w.One("hoptrace_invalid_traceparent_total", "counter",
        "Incoming traceparent headers that were invalid (a new trace was started).",
        s.invalid_traceparent);
  w.One("hoptrace_spans_produced_total", "counter", "Spans handed to the export pipeline.",
        s.spans_produced);
  w.One("hoptrace_spans_sampled_out_total", "counter", "Spans not recorded by the sampler.",
        s.spans_sampled_out);

  w.One("hoptrace_export_queue_spans", "gauge", "Spans waiting for an exporter.",
        s.export_queued);
  w.One("hoptrace_export_queue_capacity_spans", "gauge",
        "Spans the export queue holds at most (OTEL_BSP_MAX_QUEUE_SIZE).",
        s.export_queue_capacity);
  w.Family("hoptrace_spans_exported_total", "counter", "Spans an exporter delivered.");
  for (const auto& e : s.exporters) {
    w.Sample("hoptrace_spans_exported_total", Label("exporter", e.name), e.spans_exported);
  }
  w.Family("hoptrace_spans_dropped_total", "counter", "Spans lost, by reason.");
  w.Sample("hoptrace_spans_dropped_total", Label("reason", "queue_full"),
           s.spans_dropped_queue_full);
  w.Sample("hoptrace_spans_dropped_total", Label("reason", "shutdown"), s.spans_dropped_shutdown);
  for (const auto& e : s.exporters) {
    w.Sample("hoptrace_spans_dropped_total",
             Label("reason", "export_failed") + "," + Label("exporter", e.name), e.spans_failed);
    // Counted as dropped, but the outcome is unknown: an answer that came
    // too late may have been an acceptance.
    w.Sample("hoptrace_spans_dropped_total",
             Label("reason", "export_timeout") + "," + Label("exporter", e.name),
             e.spans_timed_out);
    w.Sample("hoptrace_spans_dropped_total",
             Label("reason", "rejected") + "," + Label("exporter", e.name), e.spans_rejected);
  }
  w.Family("hoptrace_export_requests_total", "counter", "Export requests sent.");
  for (const auto& e : s.exporters) {
    w.Sample("hoptrace_export_requests_total", Label("exporter", e.name), e.export_requests);
  }
  w.Family("hoptrace_export_errors_total", "counter", "Export attempts that failed.");
  for (const auto& e : s.exporters) {
    w.Sample("hoptrace_export_errors_total", Label("exporter", e.name), e.export_errors);
  }
  w.Family("hoptrace_export_latency_seconds", "summary", "Time per export request.");
  for (const auto& e : s.exporters) {
    w.Sample("hoptrace_export_latency_seconds_sum", Label("exporter", e.name),
             e.latency_seconds_sum);
    w.Sample("hoptrace_export_latency_seconds_count", Label("exporter", e.name), e.latency_count);
  }
  if (s.k8s) {
    w.One("hoptrace_k8s_pods", "gauge", "Pods of this node the agent knows.", s.k8s_pods);
    w.One("hoptrace_k8s_pods_dropped_total", "counter",
          "Pods not kept: the cache was full (kubernetes.max_pods).", s.k8s_pods_dropped);
    w.One("hoptrace_k8s_processes_selected", "gauge",
          "Processes the discovery section selects now.", s.k8s_pods_selected);
    w.One("hoptrace_k8s_lists_total", "counter", "Pod lists asked of the API server.",
          s.k8s_lists);
    w.One("hoptrace_k8s_watches_total", "counter", "Pod watches opened.", s.k8s_watches);
    w.One("hoptrace_k8s_relists_gone_total", "counter",
          "Watches that expired (410 Gone) and led to a new list.", s.k8s_relists_gone);
    w.One("hoptrace_k8s_api_errors_total", "counter", "Failed pod lists and watches.",
          s.k8s_api_errors);
    w.One("hoptrace_k8s_watch_events_total", "counter", "Pod changes received.",
          s.k8s_watch_events);
  }
  return w.Take();
}

}  // namespace hoptrace
