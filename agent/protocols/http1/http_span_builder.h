// Turns one HTTP exchange into a span with OpenTelemetry HTTP semantic
// convention attributes (semconv v1.26 http, url, server, client, network).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/connections/conn_tracker.h"
#include "agent/process/process_registry.h"
#include "agent/protocols/http1/types.h"
#include "agent/trace/span.h"

namespace hoptrace {

class NetworkFacts;

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
};

// Returns the query with every value replaced by "REDACTED" ("a=1&b" ->
// "a=REDACTED&b"): keys are kept so the shape of a call stays visible.
std::string RedactQuery(std::string_view query);

// Span name per semconv: "{method}" (we know no route), "HTTP" for methods
// outside the well-known set.
std::string SpanNameFor(std::string_view method);

Span BuildHttpSpan(const ConnInfo& conn, bool server, const http1::Record& record,
                   const SpanContextRecord& ctx, const std::optional<Closing>& closing,
                   const ProcessInfo& process, const SpanBuildOptions& options);

int64_t MonotonicToUnixOffsetNs();

}  // namespace hoptrace
