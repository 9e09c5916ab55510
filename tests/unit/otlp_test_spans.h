// A known batch for the OTLP tests: 3 spans from 2 traced processes. The third span's
// Resource is a different object with the same attributes as the second's, as after a
// process-registry refresh, so it must join the second process's ResourceSpans.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/trace/span.h"

namespace hoptrace::otlp_test {

inline TraceId MakeTraceId(uint8_t seed) {
  TraceId id;
  for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(seed + i);
  return id;
}

inline SpanId MakeSpanId(uint8_t seed) {
  SpanId id;
  for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(seed + i);
  return id;
}

inline std::shared_ptr<const Resource> FrontendResource() {
  return std::make_shared<Resource>(Resource{{
      {"service.name", std::string("frontend")},
      {"process.pid", int64_t{4242}},
      {"host.name", std::string("node-1")},
  }});
}

inline std::shared_ptr<const Resource> BackendResource() {
  return std::make_shared<Resource>(Resource{{
      {"service.name", std::string("backend")},
      {"process.pid", int64_t{777}},
  }});
}

inline std::vector<Span> SampleBatch() {
  std::vector<Span> spans(3);
  // 0: frontend SERVER span joining a remote trace (valid traceparent + tracestate).
  Span& a = spans[0];
  a.trace_id = MakeTraceId(0x10);
  a.span_id = MakeSpanId(0xa0);
  a.parent_span_id = MakeSpanId(0xb0);
  a.trace_state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
  a.flags = 0x01;
  a.kind = SpanKind::kServer;
  a.name = "GET";
  a.start_unix_nano = 1700000000123456789ull;
  a.end_unix_nano = 1700000000223456789ull;
  a.attributes = {
      {"http.request.method", std::string("GET")},
      {"http.response.status_code", int64_t{200}},
      {"hoptrace.net.rtt_ms", 0.25},
      {"hoptrace.http.head_truncated", false},
  };
  a.resource = FrontendResource();

  // 1: backend SERVER span, ERROR with a message and an event.
  Span& b = spans[1];
  b.trace_id = MakeTraceId(0x10);
  b.span_id = MakeSpanId(0xc0);
  b.parent_span_id = MakeSpanId(0xd0);
  b.flags = 0x01;
  b.kind = SpanKind::kServer;
  b.name = "POST";
  b.start_unix_nano = 1700000000150000000ull;
  b.end_unix_nano = 1700000000190000000ull;
  b.status = StatusCode::kError;
  b.status_message = "HTTP 503";
  b.attributes = {{"error.type", std::string("503")}};
  b.events = {{"hoptrace.retransmit", 1700000000160000000ull, {{"tcp.retrans", int64_t{2}}}}};
  b.resource = BackendResource();

  // 2: backend CLIENT root span (no parent), unsampled, same process as 1 through an equal
  // but distinct Resource object.
  Span& c = spans[2];
  c.trace_id = MakeTraceId(0x40);
  c.span_id = MakeSpanId(0xe0);
  c.flags = 0x00;
  c.kind = SpanKind::kClient;
  c.name = "GET";
  c.start_unix_nano = 1700000001000000000ull;
  c.end_unix_nano = 1700000001005000000ull;
  c.status = StatusCode::kOk;
  c.attributes = {{"url.full", std::string("http://db:5984/x")}, {"server.port", int64_t{5984}}};
  c.resource = BackendResource();
  return spans;
}

}  // namespace hoptrace::otlp_test
