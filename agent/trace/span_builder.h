// Turns one exchange of any protocol into a span: the trace stage's half
// (ids, kind, times, resource, the connection's network attributes, the
// error of an exchange that never got its response) around the protocol's
// half (ExchangeDetails: name, protocol attributes, status).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/connections/connection.h"
#include "agent/process/process_registry.h"
#include "agent/protocols/protocol.h"
#include "agent/trace/span.h"

namespace hoptrace {

class AttributePool;
class NetworkFacts;

// Protocol attributes (up to ~16) plus network ones (~10): reserved at once,
// since growing the vector one attribute at a time was a fifth of the
// agent's CPU.
inline constexpr size_t kSpanAttributeReserve = 28;

// The ids decided for a span when its request was seen.
struct SpanContextRecord {
  TraceId trace_id;
  SpanId span_id;
  SpanId parent_span_id;
  uint8_t flags = 0;
  std::string tracestate;
};

struct SpanBuildOptions {
  bool redact_query = true;
  // Unix time minus CLOCK_MONOTONIC, in ns: kernel timestamps are monotonic.
  int64_t monotonic_to_unix_ns = 0;
  // TCP facts of connections (network probes); null: none are added.
  NetworkFacts* network = nullptr;
  // Where the attribute vectors of exported spans come back (the span pipeline gives them);
  // null: each span allocates its own.
  AttributePool* attribute_pool = nullptr;
};

Span BuildSpan(const ConnInfo& conn, bool server, const Exchange& exchange,
               const SpanContextRecord& ctx, const std::optional<Closing>& closing,
               const ProcessInfo& process, const SpanBuildOptions& options);

int64_t MonotonicToUnixOffsetNs();

}  // namespace hoptrace
