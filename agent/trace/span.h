// The agent's own span model. Exporters translate it; nothing here knows
// about OTLP, JSON or the console.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace hoptrace {

// 16-byte W3C trace-id. All zeros is invalid.
struct TraceId {
  std::array<uint8_t, 16> bytes{};
  bool IsValid() const;
  std::string Hex() const;  // 32 lower-case hex digits
  bool operator==(const TraceId&) const = default;
};

// 8-byte W3C parent-id / span id. All zeros is invalid (and means "no parent").
struct SpanId {
  std::array<uint8_t, 8> bytes{};
  bool IsValid() const;
  std::string Hex() const;  // 16 lower-case hex digits
  bool operator==(const SpanId&) const = default;
};

// Values match OTLP's Span.SpanKind so exporters can cast.
enum class SpanKind : int { kInternal = 1, kServer = 2, kClient = 3 };
// Values match OTLP's Status.StatusCode.
enum class StatusCode : int { kUnset = 0, kOk = 1, kError = 2 };

std::string_view SpanKindName(SpanKind kind);      // "SERVER", "CLIENT", ...
std::string_view StatusCodeName(StatusCode code);  // "UNSET", "OK", "ERROR"

using AttrValue = std::variant<std::string, int64_t, double, bool>;

// The key of an attribute: a string that lives as long as the program (a literal, or one
// Intern()ed), so that building a span copies no key. Most semantic-convention keys are longer
// than std::string's inline buffer: as std::string, every key of every span was a heap
// allocation (a fifth of the agent's CPU at nginx rates went to malloc/free).
class AttrKey {
 public:
  constexpr AttrKey() : data_(""), size_(0) {}
  template <size_t N>
  consteval AttrKey(const char (&literal)[N]) : data_(literal), size_(N - 1) {}  // NOLINT
  // A key known only at run time (OTEL_RESOURCE_ATTRIBUTES, ...): one copy per distinct key,
  // kept until the process ends. nullopt once kMaxInterned distinct keys exist (the caller
  // drops the attribute): keys from outside cannot grow the agent without bound.
  static std::optional<AttrKey> Intern(std::string_view key);
  static constexpr size_t kMaxInterned = 4096;

  std::string_view view() const { return {data_, size_}; }
  operator std::string_view() const { return view(); }  // NOLINT
  // One comparison, with anything that is a string_view (another key, a literal).
  friend bool operator==(const AttrKey& a, std::string_view b) { return a.view() == b; }
  friend std::ostream& operator<<(std::ostream& os, const AttrKey& k) { return os << k.view(); }

 private:
  AttrKey(const char* data, size_t size) : data_(data), size_(size) {}
  const char* data_;
  size_t size_;
};

struct Attribute {
  Attribute() = default;
  // The value is built in place from what it is made of (a std::string is
  // moved in, not default-constructed and then assigned).
  template <typename V>
  Attribute(AttrKey k, V&& v) : key(k), value(std::forward<V>(v)) {}
  // A string value made from its characters where it is stored.
  Attribute(AttrKey k, std::in_place_type_t<std::string> t, std::string_view v)
      : key(k), value(t, v) {}

  AttrKey key;
  AttrValue value;
  bool operator==(const Attribute&) const = default;
};

using Attributes = std::vector<Attribute>;

// The value is built in place in the vector: through a by-value AttrValue
// and a temporary Attribute it was moved twice (a string copy each for
// short strings), ~80 instructions per attribute, ~17 attributes per span.
template <typename V>
inline void AddAttribute(Attributes& attrs, AttrKey key, V&& value) {
  attrs.emplace_back(key, std::forward<V>(value));
}

// A string value from a view or a literal: its octets are copied once, into
// the vector (a std::string argument made for the call is built, then moved:
// two copies, two memmove calls for a short string).
inline void AddAttribute(Attributes& attrs, AttrKey key, std::string_view value) {
  attrs.emplace_back(key, std::in_place_type<std::string>, value);
}
inline void AddAttribute(Attributes& attrs, AttrKey key, const char* value) {
  AddAttribute(attrs, key, std::string_view(value));
}

// Returns the value of key, or nullptr.
const AttrValue* FindAttribute(const Attributes& attrs, std::string_view key);

struct SpanEvent {
  std::string name;
  uint64_t time_unix_nano = 0;
  Attributes attributes;
};

// What produced a span: one traced process.
struct Resource {
  Attributes attributes;
  std::string ServiceName() const;  // "service.name", or "unknown_service"
};

struct Span {
  TraceId trace_id;
  SpanId span_id;
  SpanId parent_span_id;  // invalid = root span
  std::string trace_state;  // W3C tracestate, passed through
  uint8_t flags = 0;        // W3C trace-flags (bit 0: sampled)
  SpanKind kind = SpanKind::kInternal;
  std::string name;
  uint64_t start_unix_nano = 0;
  uint64_t end_unix_nano = 0;
  StatusCode status = StatusCode::kUnset;
  std::string status_message;
  Attributes attributes;
  std::vector<SpanEvent> events;
  std::shared_ptr<const Resource> resource;
};

}  // namespace hoptrace
