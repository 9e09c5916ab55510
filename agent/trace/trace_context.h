// W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing and
// formatting of the traceparent and tracestate headers, and id generation.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "agent/trace/span.h"

namespace hoptrace {

inline constexpr uint8_t kTraceFlagSampled = 0x01;

struct TraceContext {
  TraceId trace_id;
  SpanId parent_id;  // the caller's span id ("parent-id" in the spec)
  uint8_t flags = 0;
  std::string tracestate;  // empty when absent or invalid
  bool sampled() const { return (flags & kTraceFlagSampled) != 0; }
};

// Parses a traceparent value (and the tracestate value that came with it).
// Returns nullopt when the traceparent is invalid by the spec's rules; the
// caller then starts a new trace and ignores tracestate. A valid traceparent
// with an invalid tracestate yields a context with an empty tracestate.
std::optional<TraceContext> ParseTraceparent(std::string_view traceparent,
                                             std::string_view tracestate = {});

// True if value is a valid tracestate list (spec section 3.3).
bool IsValidTracestate(std::string_view value);

// "00-<trace-id>-<span-id>-<flags>".
std::string FormatTraceparent(const TraceId& trace_id, const SpanId& span_id, uint8_t flags);

// Random, never-zero ids. Not thread-safe: one per thread that makes ids.
class IdGenerator {
 public:
  IdGenerator();
  explicit IdGenerator(uint64_t seed);  // deterministic, for tests
  TraceId NewTraceId();
  SpanId NewSpanId();

 private:
  std::mt19937_64 rng_;
};

}  // namespace hoptrace
