#include "exporters/otlp/otlp_translator.h"

#include <type_traits>
#include <variant>

#include "exporters/otlp/otlp_resource_groups.h"

namespace hoptrace {
namespace {

namespace common = opentelemetry::proto::common::v1;
namespace trace = opentelemetry::proto::trace::v1;

static_assert(static_cast<int>(SpanKind::kInternal) == trace::Span::SPAN_KIND_INTERNAL);
static_assert(static_cast<int>(SpanKind::kServer) == trace::Span::SPAN_KIND_SERVER);
static_assert(static_cast<int>(SpanKind::kClient) == trace::Span::SPAN_KIND_CLIENT);
static_assert(static_cast<int>(StatusCode::kUnset) == trace::Status::STATUS_CODE_UNSET);
static_assert(static_cast<int>(StatusCode::kOk) == trace::Status::STATUS_CODE_OK);
static_assert(static_cast<int>(StatusCode::kError) == trace::Status::STATUS_CODE_ERROR);

void SetValue(const AttrValue& value, common::AnyValue* out) {
  std::visit(
      [out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out->set_string_value(v);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          out->set_int_value(v);
        } else if constexpr (std::is_same_v<T, double>) {
          out->set_double_value(v);
        } else {
          static_assert(std::is_same_v<T, bool>);
          out->set_bool_value(v);
        }
      },
      value);
}

void SetAttributes(const Attributes& attrs,
                   google::protobuf::RepeatedPtrField<common::KeyValue>* out) {
  out->Reserve(out->size() + static_cast<int>(attrs.size()));
  for (const Attribute& a : attrs) {
    common::KeyValue* kv = out->Add();
    kv->set_key(a.key.view().data(), a.key.view().size());
    SetValue(a.value, kv->mutable_value());
  }
}

template <size_t N>
void SetBytes(const std::array<uint8_t, N>& bytes, std::string* out) {
  out->assign(reinterpret_cast<const char*>(bytes.data()), N);
}

}  // namespace

void TranslateSpan(const Span& span, trace::Span* out) {
  SetBytes(span.trace_id.bytes, out->mutable_trace_id());
  SetBytes(span.span_id.bytes, out->mutable_span_id());
  // "If this is a root span, then this field must be empty."
  if (span.parent_span_id.IsValid()) {
    SetBytes(span.parent_span_id.bytes, out->mutable_parent_span_id());
  }
  if (!span.trace_state.empty()) out->set_trace_state(span.trace_state);
  // Low 8 bits = W3C trace-flags. The HAS_IS_REMOTE/IS_REMOTE bits (0x100/0x200) stay clear:
  // Span does not record whether its parent context came from another process, and the
  // proto says readers must treat "bit 8 clear" as "unknown", which is the truth here.
  out->set_flags(span.flags & trace::SPAN_FLAGS_TRACE_FLAGS_MASK);
  out->set_name(span.name);
  out->set_kind(static_cast<trace::Span::SpanKind>(span.kind));
  out->set_start_time_unix_nano(span.start_unix_nano);
  out->set_end_time_unix_nano(span.end_unix_nano);
  SetAttributes(span.attributes, out->mutable_attributes());
  if (!span.events.empty()) {
    out->mutable_events()->Reserve(static_cast<int>(span.events.size()));
    for (const SpanEvent& e : span.events) {
      trace::Span::Event* ev = out->add_events();
      ev->set_time_unix_nano(e.time_unix_nano);
      ev->set_name(e.name);
      SetAttributes(e.attributes, ev->mutable_attributes());
    }
  }
  // An absent Status means UNSET; SDKs omit the message unless the code is ERROR, but ours is
  // passed through as recorded.
  if (span.status != StatusCode::kUnset || !span.status_message.empty()) {
    trace::Status* status = out->mutable_status();
    status->set_code(static_cast<trace::Status::StatusCode>(span.status));
    if (!span.status_message.empty()) status->set_message(span.status_message);
  }
}

void BuildExportRequest(const std::vector<Span>& spans, std::string_view scope_name,
                        std::string_view scope_version, OtlpExportRequest* out) {
  OtlpResourceGroups groups;
  groups.Assign(spans);
  std::vector<trace::ScopeSpans*> scope_spans;
  scope_spans.reserve(groups.resources().size());
  for (const Resource* resource : groups.resources()) {
    trace::ResourceSpans* rs = out->add_resource_spans();
    SetAttributes(resource->attributes, rs->mutable_resource()->mutable_attributes());
    trace::ScopeSpans* ss = rs->add_scope_spans();
    common::InstrumentationScope* scope = ss->mutable_scope();
    scope->set_name(std::string(scope_name));
    if (!scope_version.empty()) scope->set_version(std::string(scope_version));
    scope_spans.push_back(ss);
  }
  for (size_t i = 0; i < spans.size(); ++i) {
    TranslateSpan(spans[i], scope_spans[groups.group_of()[i]]->add_spans());
  }
}

OtlpExportRequest BuildExportRequest(const std::vector<Span>& spans, std::string_view scope_name,
                                     std::string_view scope_version) {
  OtlpExportRequest request;
  BuildExportRequest(spans, scope_name, scope_version, &request);
  return request;
}

}  // namespace hoptrace
