// The span as one JSON object: the console's machine-readable form (hoptrace --output jsonl) and
// what tests and scripts parse. The schema is flat and close to OTLP/JSON, but not OTLP/JSON:
// ids are lower-case hex, times are plain unsigned numbers and enums are names.
//
// {
//   "trace_id": "4bf9…4736", "span_id": "00f0…02b7",
//   "parent_span_id": "",              // "" for a root span (invalid parent id); always present so
//                                      // consumers need no key-exists check
//   "trace_state": "", "flags": 1,     // W3C tracestate / trace-flags
//   "kind": "SERVER",                  // SpanKindName()
//   "name": "GET /api",
//   "start_time_unix_nano": 1700000000000000000, "end_time_unix_nano": …,
//   "duration_ns": …,                  // end - start, 0 if end precedes start
//   "status": {"code": "UNSET" | "OK" | "ERROR", "message": ""},
//   "attributes": {"http.request.method": "GET", "http.response.status_code": 200, …},
//   "events": [{"name": …, "time_unix_nano": …, "attributes": {…}}],
//   "resource": {"attributes": {"service.name": "frontend", …}}   // {} if the span has none
// }
//
// Attribute values keep their type (string, int64, double, bool). If a key repeats, the first
// value wins, as in FindAttribute(). A NaN or infinite double becomes null (JSON has neither).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "agent/trace/span.h"

namespace hoptrace {

nlohmann::json AttributesToJson(const Attributes& attributes);

nlohmann::json SpanToJson(const Span& span);

// SpanToJson(span) on one line, without the trailing newline, written directly (no DOM; keys in
// the order above). Use this rather than json::dump(): attribute values come from the wire and
// may be invalid UTF-8, on which dump() throws by default; here each such byte becomes U+FFFD.
std::string SpanToJsonLine(const Span& span);
// The same, appended to *out (the sink reuses one buffer per batch).
void AppendSpanJsonLine(const Span& span, std::string* out);

}  // namespace hoptrace
