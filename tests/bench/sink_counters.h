// What ht_otlp_sink counts, shared by its gRPC and HTTP receivers. Relaxed atomics: each
// counter is independent, and a reader (the stats file) may see a request half-counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "exporters/otlp/otlp_translator.h"

namespace hoptrace::bench {

struct SinkCounters {
  std::atomic<uint64_t> grpc_requests{0};
  std::atomic<uint64_t> http_requests{0};  // POST /v1/traces answered 200
  std::atomic<uint64_t> spans{0};
  std::atomic<uint64_t> resource_spans{0};
  // Serialized ExportTraceServiceRequest bytes (after decompression).
  std::atomic<uint64_t> bytes{0};
  // HTTP request bodies as received (gzip-compressed when the client compressed). gRPC's own
  // compression is undone inside gRPC and not visible here.
  std::atomic<uint64_t> http_wire_bytes{0};
  std::atomic<uint64_t> bad_requests{0};  // unparsable bodies, bad framing, wrong paths
  std::atomic<uint64_t> connections{0};   // HTTP connections accepted

  static void Add(std::atomic<uint64_t>& c, uint64_t n) {
    c.fetch_add(n, std::memory_order_relaxed);
  }

  // Counts one accepted request.
  void CountRequest(const OtlpExportRequest& request, uint64_t serialized_bytes) {
    uint64_t n = 0;
    for (const auto& rs : request.resource_spans()) {
      for (const auto& ss : rs.scope_spans()) n += static_cast<uint64_t>(ss.spans_size());
    }
    Add(spans, n);
    Add(resource_spans, static_cast<uint64_t>(request.resource_spans_size()));
    Add(bytes, serialized_bytes);
  }

  // One JSON object on one line; `uptime_s` since the sink started.
  std::string Json(double uptime_s) const {
    auto g = [](const std::atomic<uint64_t>& c) {
      return std::to_string(c.load(std::memory_order_relaxed));
    };
    const uint64_t requests = grpc_requests.load(std::memory_order_relaxed) +
                              http_requests.load(std::memory_order_relaxed);
    return "{\"uptime_s\":" + std::to_string(uptime_s) + ",\"requests\":" +
           std::to_string(requests) + ",\"grpc_requests\":" + g(grpc_requests) +
           ",\"http_requests\":" + g(http_requests) + ",\"spans\":" + g(spans) +
           ",\"resource_spans\":" + g(resource_spans) + ",\"bytes\":" + g(bytes) +
           ",\"http_wire_bytes\":" + g(http_wire_bytes) + ",\"bad_requests\":" +
           g(bad_requests) + ",\"http_connections\":" + g(connections) + "}";
  }
};

}  // namespace hoptrace::bench
