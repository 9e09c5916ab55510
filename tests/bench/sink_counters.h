// What ht_otlp_sink counts, shared by its gRPC and HTTP receivers. Relaxed atomics: each
// counter is independent, and a reader (the stats file) may see a request half-counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "exporters/otlp/otlp_translator.h"

namespace hoptrace::bench {

// How a receiver reads a request: kFull parses it into the generated messages (libprotobuf,
// what a collector does); kWire walks the protobuf wire format down to the spans (every
// field's framing checked in the request, its ResourceSpans and ScopeSpans, and each Span and
// its attributes; strings are not checked for UTF-8), a few times cheaper, so that a
// benchmark's sink costs little next to the agent it measures.
enum class SinkParse { kFull, kWire };

struct WireCounts {
  uint64_t spans = 0;
  uint64_t resource_spans = 0;
};

namespace wire {

inline bool Varint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const auto b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= uint64_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

// Calls f(field_number, bytes) for each length-delimited field of the message `in`, after
// checking the framing of every field; false if it is not a well-framed message (or f said so).
template <typename F>
bool ForEachField(std::string_view in, F&& f) {
  while (!in.empty()) {
    uint64_t key = 0, v = 0;
    if (!Varint(&in, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return false;
    switch (key & 7) {
      case 0:
        if (!Varint(&in, &v)) return false;
        break;
      case 1:
        if (in.size() < 8) return false;
        in.remove_prefix(8);
        break;
      case 5:
        if (in.size() < 4) return false;
        in.remove_prefix(4);
        break;
      case 2:
        if (!Varint(&in, &v) || v > in.size()) return false;
        if (!f(static_cast<uint32_t>(key >> 3), in.substr(0, v))) return false;
        in.remove_prefix(v);
        break;
      default:
        return false;  // groups (3, 4) are not in OTLP; 6 and 7 do not exist
    }
  }
  return true;
}

}  // namespace wire

// The spans of a serialized ExportTraceServiceRequest, from its wire format (see SinkParse);
// nullopt if it is not well framed.
inline std::optional<WireCounts> CountWire(std::string_view request) {
  WireCounts c;
  auto any = [](uint32_t, std::string_view) { return true; };
  // KeyValue (in Span.attributes = 9) and Span.events = 11 / links = 13: framing only.
  auto span = [&](uint32_t field, std::string_view b) {
    return (field != 9 && field != 11 && field != 13) || wire::ForEachField(b, any);
  };
  // Field 1 (scope, resource) is a message, 2 the next level down, 3 schema_url a string.
  auto scope_spans = [&](uint32_t field, std::string_view b) {
    if (field == 1) return wire::ForEachField(b, any);
    if (field != 2) return true;
    ++c.spans;
    return wire::ForEachField(b, span);
  };
  auto resource_spans = [&](uint32_t field, std::string_view b) {
    if (field == 1) return wire::ForEachField(b, any);
    if (field != 2) return true;
    return wire::ForEachField(b, scope_spans);
  };
  const bool ok = wire::ForEachField(request, [&](uint32_t field, std::string_view b) {
    if (field != 1) return true;  // unknown fields are skipped, as libprotobuf does
    ++c.resource_spans;
    return wire::ForEachField(b, resource_spans);
  });
  if (!ok) return std::nullopt;
  return c;
}

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
    WireCounts c;
    for (const auto& rs : request.resource_spans()) {
      for (const auto& ss : rs.scope_spans()) c.spans += static_cast<uint64_t>(ss.spans_size());
    }
    c.resource_spans = static_cast<uint64_t>(request.resource_spans_size());
    CountRequest(c, serialized_bytes);
  }

  void CountRequest(const WireCounts& c, uint64_t serialized_bytes) {
    Add(spans, c.spans);
    Add(resource_spans, c.resource_spans);
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
