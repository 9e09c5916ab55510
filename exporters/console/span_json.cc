#include "exporters/console/span_json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string_view>
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
    out.emplace(std::string(a.key.view()), AttrValueToJson(a.value));
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

namespace {

// The JSON-lines writer below produces what SpanToJson(span).dump() would (same values; keys in
// schema order rather than sorted), without building a DOM: at tens of thousands of spans a
// second the DOM was most of the sink's cost.

void AppendUnsigned(uint64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendSigned(int64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

// The UTF-8 sequence starting at s[i] (RFC 3629 section 4: no overlong forms, no surrogates,
// nothing above U+10FFFF): its length, and whether it is a whole valid character. An invalid
// one is as long as its maximal valid prefix (at least one byte), which is replaced by one
// U+FFFD ("substitution of maximal subparts", as dump() with error_handler_t::replace does).
struct Utf8Seq {
  size_t len;
  bool valid;
};

Utf8Seq ScanUtf8(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return {1, false};
  }
  for (size_t k = 1; k <= need; ++k) {
    if (i + k >= s.size()) return {k, false};
    const unsigned char d = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (d < lo || d > hi) : (d & 0xC0) != 0x80) return {k, false};
  }
  return {need + 1, true};
}

// A JSON string; bytes that are not UTF-8 become U+FFFD (see ScanUtf8).
void AppendString(std::string_view s, std::string* out) {
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      size_t j = i + 1;
      while (j < s.size()) {
        const unsigned char d = static_cast<unsigned char>(s[j]);
        if (d < 0x20 || d >= 0x80 || d == '"' || d == '\\') break;
        ++j;
      }
      out->append(s.data() + i, j - i);
      i = j;
      continue;
    }
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          const Utf8Seq seq = ScanUtf8(s, i);
          if (seq.valid) {
            out->append(s.data() + i, seq.len);
          } else {
            out->append("\xEF\xBF\xBD");
          }
          i += seq.len;
          continue;
        }
    }
    ++i;
  }
  out->push_back('"');
}

void AppendValue(const AttrValue& value, std::string* out) {
  if (const auto* s = std::get_if<std::string>(&value)) {
    AppendString(*s, out);
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    AppendSigned(*i, out);
  } else if (const auto* b = std::get_if<bool>(&value)) {
    out->append(*b ? "true" : "false");
  } else {
    const double d = std::get<double>(value);
    if (!std::isfinite(d)) {
      out->append("null");
      return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), d);  // shortest form that reads back exactly
    out->append(buf, r.ptr);
    // Keep a double a JSON float ("2.0", not "2"), as dump() does.
    if (std::string_view(buf, r.ptr - buf).find_first_of(".eEn") == std::string_view::npos) {
      out->append(".0");
    }
  }
}

void AppendAttributes(const Attributes& attributes, std::string* out) {
  out->push_back('{');
  bool first = true;
  for (size_t i = 0; i < attributes.size(); ++i) {
    const Attribute& a = attributes[i];
    // The first value of a repeated key wins, as in FindAttribute().
    bool repeated = false;
    for (size_t k = 0; k < i && !repeated; ++k) repeated = attributes[k].key == a.key;
    if (repeated) continue;
    if (!first) out->push_back(',');
    first = false;
    AppendString(a.key, out);
    out->push_back(':');
    AppendValue(a.value, out);
  }
  out->push_back('}');
}

void AppendField(std::string_view name, std::string* out) {
  out->push_back(',');
  out->push_back('"');
  out->append(name);
  out->append("\":");
}

}  // namespace

void AppendSpanJsonLine(const Span& span, std::string* out) {
  out->append("{\"trace_id\":\"");
  out->append(span.trace_id.Hex());
  out->append("\",\"span_id\":\"");
  out->append(span.span_id.Hex());
  out->append("\",\"parent_span_id\":\"");
  if (span.parent_span_id.IsValid()) out->append(span.parent_span_id.Hex());
  out->push_back('"');
  AppendField("trace_state", out);
  AppendString(span.trace_state, out);
  AppendField("flags", out);
  AppendUnsigned(span.flags, out);
  AppendField("kind", out);
  AppendString(SpanKindName(span.kind), out);
  AppendField("name", out);
  AppendString(span.name, out);
  AppendField("start_time_unix_nano", out);
  AppendUnsigned(span.start_unix_nano, out);
  AppendField("end_time_unix_nano", out);
  AppendUnsigned(span.end_unix_nano, out);
  AppendField("duration_ns", out);
  AppendUnsigned(
      span.end_unix_nano >= span.start_unix_nano ? span.end_unix_nano - span.start_unix_nano : 0,
      out);
  AppendField("status", out);
  out->append("{\"code\":");
  AppendString(StatusCodeName(span.status), out);
  out->append(",\"message\":");
  AppendString(span.status_message, out);
  out->push_back('}');
  AppendField("attributes", out);
  AppendAttributes(span.attributes, out);
  AppendField("events", out);
  out->push_back('[');
  for (size_t i = 0; i < span.events.size(); ++i) {
    const SpanEvent& e = span.events[i];
    if (i > 0) out->push_back(',');
    out->append("{\"name\":");
    AppendString(e.name, out);
    out->append(",\"time_unix_nano\":");
    AppendUnsigned(e.time_unix_nano, out);
    out->append(",\"attributes\":");
    AppendAttributes(e.attributes, out);
    out->push_back('}');
  }
  out->push_back(']');
  AppendField("resource", out);
  out->append("{\"attributes\":");
  if (span.resource) {
    AppendAttributes(span.resource->attributes, out);
  } else {
    out->append("{}");
  }
  out->append("}}");
}

std::string SpanToJsonLine(const Span& span) {
  std::string out;
  AppendSpanJsonLine(span, &out);
  return out;
}

}  // namespace hoptrace
