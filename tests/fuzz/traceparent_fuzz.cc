// Fuzzes ParseTraceparent/IsValidTracestate with attacker-controlled header
// values. Input: "<traceparent>\n<tracestate>" (no newline: no tracestate).
// Besides sanitizer findings, traps when a property every accepted header must
// have does not hold, so a logic bug shows up as a crash with its input.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "agent/trace/trace_context.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view traceparent = input.substr(0, nl);
  const std::string_view tracestate =
      nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);

  const bool state_valid = hoptrace::IsValidTracestate(tracestate);
  const auto ctx = hoptrace::ParseTraceparent(traceparent, tracestate);
  if (ctx) {
    const std::string_view tp = TrimOws(traceparent);
    // Accepted ids are never the invalid all-zero ones, and they are exactly
    // the hex the header carried at the fixed offsets.
    Check(ctx->trace_id.IsValid() && ctx->parent_id.IsValid());
    Check(tp.size() >= 55);
    Check(tp.substr(3, 32) == ctx->trace_id.Hex());
    Check(tp.substr(36, 16) == ctx->parent_id.Hex());
    // Version 00 has exactly 55 characters; "ff" is never accepted.
    Check(tp.substr(0, 2) != "ff");
    if (tp.substr(0, 2) == "00") Check(tp.size() == 55);
    // tracestate passes through trimmed when valid and is dropped otherwise.
    Check(ctx->tracestate == (state_valid ? TrimOws(tracestate) : std::string_view()));

    // What we format, we parse back to the same context.
    const std::string out = hoptrace::FormatTraceparent(ctx->trace_id, ctx->parent_id, ctx->flags);
    Check(out.size() == 55);
    const auto again = hoptrace::ParseTraceparent(out, ctx->tracestate);
    Check(again.has_value());
    Check(again->trace_id == ctx->trace_id);
    Check(again->parent_id == ctx->parent_id);
    Check(again->flags == ctx->flags);
    Check(again->sampled() == ctx->sampled());
    Check(again->tracestate == ctx->tracestate);
  }

  // Any seed gives valid (non-zero) ids.
  uint64_t seed = 0;
  // data may be null when size is 0, and memcpy from null is undefined.
  if (size > 0) std::memcpy(&seed, data, size < sizeof(seed) ? size : sizeof(seed));
  hoptrace::IdGenerator gen(seed);
  Check(gen.NewTraceId().IsValid() && gen.NewSpanId().IsValid());
  return 0;
}
