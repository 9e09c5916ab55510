#include "exporters/otlp/otlp_wire_encoder.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>
#include <variant>

namespace hoptrace {
namespace {

// Tags (field_number << 3 | wire_type) of the fields written, per message of
// opentelemetry/proto (exporters/otlp/proto). Wire types: 0 varint, 1 fixed64, 2 length-
// delimited, 5 fixed32.
namespace tag {
constexpr uint8_t kRequestResourceSpans = 1 << 3 | 2;
constexpr uint8_t kResourceSpansResource = 1 << 3 | 2;
constexpr uint8_t kResourceSpansScopeSpans = 2 << 3 | 2;
constexpr uint8_t kResourceAttributes = 1 << 3 | 2;
constexpr uint8_t kScopeSpansScope = 1 << 3 | 2;
constexpr uint8_t kScopeSpansSpans = 2 << 3 | 2;
constexpr uint8_t kScopeName = 1 << 3 | 2;
constexpr uint8_t kScopeVersion = 2 << 3 | 2;
constexpr uint8_t kSpanTraceId = 1 << 3 | 2;
constexpr uint8_t kSpanSpanId = 2 << 3 | 2;
constexpr uint8_t kSpanTraceState = 3 << 3 | 2;
constexpr uint8_t kSpanParentSpanId = 4 << 3 | 2;
constexpr uint8_t kSpanName = 5 << 3 | 2;
constexpr uint8_t kSpanKind = 6 << 3 | 0;
constexpr uint8_t kSpanStartTime = 7 << 3 | 1;
constexpr uint8_t kSpanEndTime = 8 << 3 | 1;
constexpr uint8_t kSpanAttributes = 9 << 3 | 2;
constexpr uint8_t kSpanEvents = 11 << 3 | 2;
constexpr uint8_t kSpanStatus = 15 << 3 | 2;
// Span.flags is field 16, fixed32: tag 133, a two-byte varint.
constexpr uint8_t kSpanFlags[2] = {0x80 | (16 << 3 | 5), (16 << 3 | 5) >> 7};
constexpr uint8_t kEventTime = 1 << 3 | 1;
constexpr uint8_t kEventName = 2 << 3 | 2;
constexpr uint8_t kEventAttributes = 3 << 3 | 2;
constexpr uint8_t kStatusMessage = 2 << 3 | 2;
constexpr uint8_t kStatusCode = 3 << 3 | 0;
constexpr uint8_t kKeyValueKey = 1 << 3 | 2;
constexpr uint8_t kKeyValueValue = 2 << 3 | 2;
constexpr uint8_t kAnyValueString = 1 << 3 | 2;
constexpr uint8_t kAnyValueBool = 2 << 3 | 0;
constexpr uint8_t kAnyValueInt = 3 << 3 | 0;
constexpr uint8_t kAnyValueDouble = 4 << 3 | 1;
}  // namespace tag

// A tag and a length prefix (a varint: at most 10 bytes).
constexpr size_t kFieldOverhead = 1 + 10;
constexpr uint32_t kNoSpan = std::numeric_limits<uint32_t>::max();
// SPAN_FLAGS_TRACE_FLAGS_MASK: the low 8 bits are the W3C trace-flags (see TranslateSpan).
constexpr uint32_t kTraceFlagsMask = 0xff;

size_t VarintSize(uint64_t v) { return (std::bit_width(v | 1) + 6) / 7; }

// The fixed-width fields are copied from memory as they are: protobuf's are little-endian.
static_assert(std::endian::native == std::endian::little);

// Writes fields back to front into a buffer it grows as needed (kept by the caller between
// batches). The unchecked writes need room made first with Reserve(); each field or
// attribute reserves once for all it writes.
class Writer {
 public:
  Writer(std::unique_ptr<char[]>* buffer, size_t* capacity)
      : buffer_(buffer),
        capacity_(capacity),
        begin_(buffer->get()),
        end_(begin_ + *capacity),
        cursor_(end_) {}

  // Bytes written so far. Positions are kept as sizes, which survive the buffer growing.
  size_t size() const { return static_cast<size_t>(end_ - cursor_); }
  std::string_view bytes() const { return {cursor_, size()}; }

  void Reserve(size_t n) {
    if (static_cast<size_t>(cursor_ - begin_) < n) Grow(n);
  }

  void Byte(uint8_t b) { *--cursor_ = static_cast<char>(b); }

  // "Each byte in the varint has a continuation bit that indicates if the byte that follows
  // it is part of the varint ... The lower 7 bits of each byte are used to store the two's
  // complement representation of the number in groups of 7 bits, least significant group
  // first." (protobuf encoding guide)
  void Varint(uint64_t v) {
    if (v < 0x80) {  // most lengths, tags and values: one byte, no size computation
      *--cursor_ = static_cast<char>(v);
      return;
    }
    cursor_ -= VarintSize(v);
    char* out = cursor_;
    while (v >= 0x80) {
      *out++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *out = static_cast<char>(v);
  }

  // "fixed64, sfixed64, double: always eight bytes"; little-endian, as this host stores them.
  void Fixed64(uint64_t v) {
    cursor_ -= 8;
    std::memcpy(cursor_, &v, 8);
  }

  void Fixed32(uint32_t v) {
    cursor_ -= 4;
    std::memcpy(cursor_, &v, 4);
  }

  void Raw(const void* data, size_t n) {
    cursor_ -= n;
    std::memcpy(cursor_, data, n);
  }

  // A length-delimited field whose content was written since size() was `start`.
  void CloseMessage(size_t start, uint8_t field_tag) {
    Reserve(kFieldOverhead);
    Varint(size() - start);
    Byte(field_tag);
  }

  // A string or bytes field, written whatever its value.
  void Bytes(uint8_t field_tag, const void* data, size_t n) {
    Reserve(n + kFieldOverhead);
    Raw(data, n);
    Varint(n);
    Byte(field_tag);
  }

  // A proto3 string field: absent when empty.
  void String(uint8_t field_tag, std::string_view s) {
    if (!s.empty()) Bytes(field_tag, s.data(), s.size());
  }

 private:
  [[gnu::noinline]] void Grow(size_t n) {
    const size_t used = size();
    const size_t capacity = std::max({2 * *capacity_, used + n, size_t{64 * 1024}});
    auto fresh = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(fresh.get() + capacity - used, cursor_, used);
    *buffer_ = std::move(fresh);
    *capacity_ = capacity;
    begin_ = buffer_->get();
    end_ = begin_ + capacity;
    cursor_ = end_ - used;
  }

  std::unique_ptr<char[]>* buffer_;
  size_t* capacity_;
  char* begin_;
  char* end_;
  char* cursor_;  // the first byte written
};

// KeyValue{key, AnyValue value}. The value is always present: AnyValue's oneof has presence,
// so an empty string, 0 and false are written too.
void WriteAttribute(Writer& w, const Attribute& a, uint8_t field_tag) {
  const std::string_view key = a.key.view();
  const std::string* str = std::get_if<std::string>(&a.value);
  w.Reserve(key.size() + (str != nullptr ? str->size() : 0) + 4 * kFieldOverhead);
  const size_t start = w.size();
  std::visit(
      [&w](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          w.Raw(v.data(), v.size());
          w.Varint(v.size());
          w.Byte(tag::kAnyValueString);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          w.Varint(static_cast<uint64_t>(v));  // int64: negatives take all 10 bytes
          w.Byte(tag::kAnyValueInt);
        } else if constexpr (std::is_same_v<T, double>) {
          w.Fixed64(std::bit_cast<uint64_t>(v));
          w.Byte(tag::kAnyValueDouble);
        } else {
          static_assert(std::is_same_v<T, bool>);
          w.Byte(v ? 1 : 0);
          w.Byte(tag::kAnyValueBool);
        }
      },
      a.value);
  w.Varint(w.size() - start);
  w.Byte(tag::kKeyValueValue);
  if (!key.empty()) {
    w.Raw(key.data(), key.size());
    w.Varint(key.size());
    w.Byte(tag::kKeyValueKey);
  }
  w.Varint(w.size() - start);
  w.Byte(field_tag);
}

// Back to front, so the attributes read in their order.
void WriteAttributes(Writer& w, const Attributes& attrs, uint8_t field_tag) {
  for (auto it = attrs.rbegin(); it != attrs.rend(); ++it) WriteAttribute(w, *it, field_tag);
}

// An enum field: an int32 on the wire, absent when 0.
void WriteEnum(Writer& w, uint8_t field_tag, int value) {
  if (value == 0) return;
  w.Reserve(kFieldOverhead);
  w.Varint(static_cast<uint64_t>(static_cast<int64_t>(value)));
  w.Byte(field_tag);
}

void WriteFixed64(Writer& w, uint8_t field_tag, uint64_t value) {
  if (value == 0) return;
  w.Reserve(1 + 8);
  w.Fixed64(value);
  w.Byte(field_tag);
}

// The fields of TranslateSpan (otlp_translator.cc), with the same presence rules; in
// descending field order, which leaves them ascending in the output as libprotobuf writes them.
void WriteSpan(Writer& w, const Span& span) {
  const size_t start = w.size();
  if (const uint32_t flags = span.flags & kTraceFlagsMask; flags != 0) {
    w.Reserve(2 + 4);
    w.Fixed32(flags);
    w.Byte(tag::kSpanFlags[1]);
    w.Byte(tag::kSpanFlags[0]);
  }
  if (span.status != StatusCode::kUnset || !span.status_message.empty()) {
    const size_t status_start = w.size();
    WriteEnum(w, tag::kStatusCode, static_cast<int>(span.status));
    w.String(tag::kStatusMessage, span.status_message);
    w.CloseMessage(status_start, tag::kSpanStatus);
  }
  for (auto e = span.events.rbegin(); e != span.events.rend(); ++e) {
    const size_t event_start = w.size();
    WriteAttributes(w, e->attributes, tag::kEventAttributes);
    w.String(tag::kEventName, e->name);
    WriteFixed64(w, tag::kEventTime, e->time_unix_nano);
    w.CloseMessage(event_start, tag::kSpanEvents);
  }
  WriteAttributes(w, span.attributes, tag::kSpanAttributes);
  WriteFixed64(w, tag::kSpanEndTime, span.end_unix_nano);
  WriteFixed64(w, tag::kSpanStartTime, span.start_unix_nano);
  WriteEnum(w, tag::kSpanKind, static_cast<int>(span.kind));
  w.String(tag::kSpanName, span.name);
  // "If this is a root span, then this field must be empty."
  if (span.parent_span_id.IsValid()) {
    w.Bytes(tag::kSpanParentSpanId, span.parent_span_id.bytes.data(),
            span.parent_span_id.bytes.size());
  }
  w.String(tag::kSpanTraceState, span.trace_state);
  w.Bytes(tag::kSpanSpanId, span.span_id.bytes.data(), span.span_id.bytes.size());
  w.Bytes(tag::kSpanTraceId, span.trace_id.bytes.data(), span.trace_id.bytes.size());
  w.CloseMessage(start, tag::kScopeSpansSpans);
}

}  // namespace

std::string_view OtlpWireEncoder::Encode(const std::vector<Span>& spans,
                                         std::string_view scope_name,
                                         std::string_view scope_version) {
  groups_.Assign(spans);
  const std::vector<const Resource*>& resources = groups_.resources();
  const std::vector<uint32_t>& group_of = groups_.group_of();
  last_in_group_.assign(resources.size(), kNoSpan);
  previous_in_group_.resize(spans.size());
  for (uint32_t i = 0; i < spans.size(); ++i) {
    previous_in_group_[i] = last_in_group_[group_of[i]];
    last_in_group_[group_of[i]] = i;
  }

  Writer w(&buffer_, &capacity_);
  for (size_t g = resources.size(); g-- > 0;) {
    // ResourceSpans{resource, ScopeSpans{scope, spans}}: the ScopeSpans is its last field, so
    // both start here.
    const size_t start = w.size();
    for (uint32_t i = last_in_group_[g]; i != kNoSpan; i = previous_in_group_[i]) {
      WriteSpan(w, spans[i]);
    }
    const size_t scope_start = w.size();
    w.String(tag::kScopeVersion, scope_version);
    w.String(tag::kScopeName, scope_name);
    w.CloseMessage(scope_start, tag::kScopeSpansScope);
    w.CloseMessage(start, tag::kResourceSpansScopeSpans);
    const size_t resource_start = w.size();
    WriteAttributes(w, resources[g]->attributes, tag::kResourceAttributes);
    w.CloseMessage(resource_start, tag::kResourceSpansResource);
    w.CloseMessage(start, tag::kRequestResourceSpans);
  }
  return w.bytes();
}

}  // namespace hoptrace
