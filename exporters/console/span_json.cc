#include "exporters/console/span_json.h"

#include <variant>

namespace hoptrace {

using nlohmann::json;

namespace {

json AttrValueToJson(const AttrValue& value) {
  return std::visit([](const auto& v) { return json(v); }, value);
}

}  // namespace

json AttributesToJson(const Attributes& attributes) {
  json out = json::object();
  for (const Attribute& a : attributes) {
    // emplace keeps the first value of a repeated key, matching FindAttribute().
    out.emplace(a.key, AttrValueToJson(a.value));
  }
  return out;
}

json SpanToJson(const Span& span) {
  json events = json::array();
  for (const SpanEvent& e : span.events) {
    events.push_back({{"name", e.name},
                      {"time_unix_nano", e.time_unix_nano},
                      {"attributes", AttributesToJson(e.attributes)}});
  }
  const uint64_t duration =
      span.end_unix_nano >= span.start_unix_nano ? span.end_unix_nano - span.start_unix_nano : 0;
  return {
      {"trace_id", span.trace_id.Hex()},
      {"span_id", span.span_id.Hex()},
      {"parent_span_id", span.parent_span_id.IsValid() ? span.parent_span_id.Hex() : ""},
      {"trace_state", span.trace_state},
      {"flags", span.flags},
      {"kind", SpanKindName(span.kind)},
      {"name", span.name},
      {"start_time_unix_nano", span.start_unix_nano},
      {"end_time_unix_nano", span.end_unix_nano},
      {"duration_ns", duration},
      {"status", {{"code", StatusCodeName(span.status)}, {"message", span.status_message}}},
      {"attributes", AttributesToJson(span.attributes)},
      {"events", std::move(events)},
      {"resource",
       {{"attributes",
         span.resource ? AttributesToJson(span.resource->attributes) : json::object()}}},
  };
}

std::string SpanToJsonLine(const Span& span) {
  return SpanToJson(span).dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

}  // namespace hoptrace
