// Spans for the hop tests, built the way BuildSpan fills HTTP spans.
#pragma once

#include <memory>
#include <string>

#include "agent/trace/span.h"

namespace hoptrace::testing {

inline SpanId Sid(uint8_t n) {
  SpanId id;
  id.bytes[7] = n;
  return id;
}

inline TraceId Tid(uint8_t n) {
  TraceId id;
  id.bytes[15] = n;
  return id;
}

inline std::shared_ptr<const Resource> Service(const std::string& name) {
  auto r = std::make_shared<Resource>();
  r->attributes.push_back({"service.name", name});
  return r;
}

// A span of trace 1 from start to end (ns); parent 0 = none.
inline Span HttpSpan(SpanKind kind, const std::string& service, uint8_t id, uint8_t parent,
                     uint64_t start, uint64_t end, const std::string& local, int64_t local_port,
                     const std::string& peer, int64_t peer_port) {
  Span s;
  s.trace_id = Tid(1);
  s.span_id = Sid(id);
  if (parent) s.parent_span_id = Sid(parent);
  s.kind = kind;
  s.name = "GET";
  s.start_unix_nano = start;
  s.end_unix_nano = end;
  s.resource = Service(service);
  auto& a = s.attributes;
  a.push_back({"http.request.method", std::string("GET")});
  if (kind == SpanKind::kServer) {
    a.push_back({"url.path", std::string("/work")});
    a.push_back({"client.address", peer});
  } else {
    a.push_back({"url.full", "http://" + peer + ":" + std::to_string(peer_port) + "/work"});
    a.push_back({"server.address", peer});
    a.push_back({"server.port", peer_port});
  }
  a.push_back({"http.response.status_code", int64_t{200}});
  a.push_back({"network.peer.address", peer});
  a.push_back({"network.peer.port", peer_port});
  a.push_back({"network.local.address", local});
  a.push_back({"network.local.port", local_port});
  return s;
}

}  // namespace hoptrace::testing
