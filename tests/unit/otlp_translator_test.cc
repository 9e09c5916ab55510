#include "exporters/otlp/otlp_translator.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "tests/unit/otlp_test_spans.h"

namespace hoptrace {
namespace {

namespace common = opentelemetry::proto::common::v1;
namespace trace = opentelemetry::proto::trace::v1;
using otlp_test::MakeSpanId;
using otlp_test::MakeTraceId;
using otlp_test::SampleBatch;

template <size_t N>
std::string Bytes(const std::array<uint8_t, N>& a) {
  return std::string(reinterpret_cast<const char*>(a.data()), N);
}

const common::AnyValue& Attr(const google::protobuf::RepeatedPtrField<common::KeyValue>& kvs,
                             const std::string& key) {
  for (const auto& kv : kvs) {
    if (kv.key() == key) return kv.value();
  }
  ADD_FAILURE() << "no attribute " << key;
  return common::AnyValue::default_instance();
}

TEST(OtlpTranslatorTest, GroupsByProcessThenScopeKeepingOrder) {
  const auto req = BuildExportRequest(SampleBatch(), "hoptrace", "0.1.0");
  ASSERT_EQ(req.resource_spans_size(), 2);

  const trace::ResourceSpans& front = req.resource_spans(0);
  ASSERT_EQ(front.resource().attributes_size(), 3);
  EXPECT_EQ(front.resource().attributes(0).key(), "service.name");
  EXPECT_EQ(front.resource().attributes(0).value().string_value(), "frontend");
  EXPECT_EQ(front.resource().attributes(1).key(), "process.pid");
  EXPECT_EQ(front.resource().attributes(1).value().int_value(), 4242);
  EXPECT_EQ(front.resource().attributes(2).value().string_value(), "node-1");
  ASSERT_EQ(front.scope_spans_size(), 1);
  EXPECT_EQ(front.scope_spans(0).scope().name(), "hoptrace");
  EXPECT_EQ(front.scope_spans(0).scope().version(), "0.1.0");
  ASSERT_EQ(front.scope_spans(0).spans_size(), 1);
  EXPECT_EQ(front.scope_spans(0).spans(0).span_id(), Bytes(MakeSpanId(0xa0).bytes));

  // Spans 1 and 2 have distinct but equal Resources: one ResourceSpans, input order.
  const trace::ResourceSpans& back = req.resource_spans(1);
  EXPECT_EQ(Attr(back.resource().attributes(), "service.name").string_value(), "backend");
  EXPECT_EQ(Attr(back.resource().attributes(), "process.pid").int_value(), 777);
  ASSERT_EQ(back.scope_spans_size(), 1);
  EXPECT_EQ(back.scope_spans(0).scope().name(), "hoptrace");
  ASSERT_EQ(back.scope_spans(0).spans_size(), 2);
  EXPECT_EQ(back.scope_spans(0).spans(0).span_id(), Bytes(MakeSpanId(0xc0).bytes));
  EXPECT_EQ(back.scope_spans(0).spans(1).span_id(), Bytes(MakeSpanId(0xe0).bytes));
  EXPECT_TRUE(back.schema_url().empty());
}

TEST(OtlpTranslatorTest, ServerSpanWithRemoteParentHasEveryField) {
  const auto req = BuildExportRequest(SampleBatch(), "hoptrace", "0.1.0");
  const trace::Span& s = req.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(s.trace_id(), Bytes(MakeTraceId(0x10).bytes));
  EXPECT_EQ(s.trace_id().size(), 16u);
  EXPECT_EQ(s.span_id().size(), 8u);
  EXPECT_EQ(s.parent_span_id(), Bytes(MakeSpanId(0xb0).bytes));
  EXPECT_EQ(s.trace_state(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  EXPECT_EQ(s.flags(), 0x01u);
  EXPECT_EQ(s.name(), "GET");
  EXPECT_EQ(s.kind(), trace::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(s.start_time_unix_nano(), 1700000000123456789ull);
  EXPECT_EQ(s.end_time_unix_nano(), 1700000000223456789ull);
  ASSERT_EQ(s.attributes_size(), 4);
  EXPECT_EQ(s.attributes(0).key(), "http.request.method");
  EXPECT_EQ(s.attributes(0).value().value_case(), common::AnyValue::kStringValue);
  EXPECT_EQ(s.attributes(0).value().string_value(), "GET");
  EXPECT_EQ(s.attributes(1).value().value_case(), common::AnyValue::kIntValue);
  EXPECT_EQ(s.attributes(1).value().int_value(), 200);
  EXPECT_EQ(s.attributes(2).value().value_case(), common::AnyValue::kDoubleValue);
  EXPECT_DOUBLE_EQ(s.attributes(2).value().double_value(), 0.25);
  EXPECT_EQ(s.attributes(3).value().value_case(), common::AnyValue::kBoolValue);
  EXPECT_FALSE(s.attributes(3).value().bool_value());
  EXPECT_EQ(s.events_size(), 0);
  EXPECT_EQ(s.links_size(), 0);
  EXPECT_EQ(s.dropped_attributes_count(), 0u);
  EXPECT_FALSE(s.has_status());  // UNSET
}

TEST(OtlpTranslatorTest, ErrorStatusAndEventsAreTranslated) {
  const auto req = BuildExportRequest(SampleBatch(), "hoptrace", "0.1.0");
  const trace::Span& s = req.resource_spans(1).scope_spans(0).spans(0);
  EXPECT_EQ(s.kind(), trace::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(s.name(), "POST");
  ASSERT_TRUE(s.has_status());
  EXPECT_EQ(s.status().code(), trace::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(s.status().message(), "HTTP 503");
  EXPECT_EQ(Attr(s.attributes(), "error.type").string_value(), "503");
  ASSERT_EQ(s.events_size(), 1);
  EXPECT_EQ(s.events(0).name(), "hoptrace.retransmit");
  EXPECT_EQ(s.events(0).time_unix_nano(), 1700000000160000000ull);
  ASSERT_EQ(s.events(0).attributes_size(), 1);
  EXPECT_EQ(s.events(0).attributes(0).key(), "tcp.retrans");
  EXPECT_EQ(s.events(0).attributes(0).value().int_value(), 2);
}

TEST(OtlpTranslatorTest, RootClientSpanHasEmptyParentAndNoTraceState) {
  const auto req = BuildExportRequest(SampleBatch(), "hoptrace", "0.1.0");
  const trace::Span& s = req.resource_spans(1).scope_spans(0).spans(1);
  EXPECT_EQ(s.trace_id(), Bytes(MakeTraceId(0x40).bytes));
  EXPECT_TRUE(s.parent_span_id().empty());  // "If this is a root span ... must be empty"
  EXPECT_TRUE(s.trace_state().empty());
  EXPECT_EQ(s.flags(), 0u);
  EXPECT_EQ(s.kind(), trace::Span::SPAN_KIND_CLIENT);
  ASSERT_TRUE(s.has_status());
  EXPECT_EQ(s.status().code(), trace::Status::STATUS_CODE_OK);
  EXPECT_TRUE(s.status().message().empty());
  EXPECT_EQ(Attr(s.attributes(), "server.port").int_value(), 5984);
}

TEST(OtlpTranslatorTest, FlagsCarryOnlyTheW3cTraceFlags) {
  Span span = SampleBatch()[0];
  span.flags = 0xff;
  trace::Span out;
  TranslateSpan(span, &out);
  // Whether the parent is remote is not recorded in Span, so bits 8/9 stay "unknown" (0).
  EXPECT_EQ(out.flags(), 0xffu);
  EXPECT_EQ(out.flags() & trace::SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, 0u);
}

TEST(OtlpTranslatorTest, SpanWithoutResourceGetsUnknownService) {
  std::vector<Span> spans = SampleBatch();
  spans[0].resource = nullptr;
  spans[1].resource = nullptr;
  const auto req = BuildExportRequest(spans, "hoptrace", "");
  ASSERT_EQ(req.resource_spans_size(), 2);
  const auto& rs = req.resource_spans(0);
  ASSERT_EQ(rs.resource().attributes_size(), 1);
  EXPECT_EQ(rs.resource().attributes(0).value().string_value(), "unknown_service");
  EXPECT_EQ(rs.scope_spans(0).spans_size(), 2);
  EXPECT_FALSE(rs.scope_spans(0).scope().version().size());
}

TEST(OtlpTranslatorTest, EmptyBatchMakesEmptyRequest) {
  EXPECT_EQ(BuildExportRequest({}, "hoptrace", "1").resource_spans_size(), 0);
}

TEST(OtlpTranslatorTest, RequestSurvivesTheWire) {
  const auto req = BuildExportRequest(SampleBatch(), "hoptrace", "0.1.0");
  std::string bytes;
  ASSERT_TRUE(req.SerializeToString(&bytes));
  OtlpExportRequest back;
  ASSERT_TRUE(back.ParseFromString(bytes));
  EXPECT_EQ(back.SerializeAsString(), bytes);
  EXPECT_EQ(back.resource_spans(1).scope_spans(0).spans(0).status().message(), "HTTP 503");
}

// The .proto files are written in this project; a wrong number here would silently corrupt
// every span a collector decodes. Pins them against opentelemetry-proto v1.x.
TEST(OtlpProtoContractTest, FieldNumbersAndTypesMatchOpentelemetryProto) {
  using google::protobuf::FieldDescriptor;
  struct Expect {
    const google::protobuf::Descriptor* message;
    const char* field;
    int number;
    FieldDescriptor::Type type;
  };
  const Expect expects[] = {
      {trace::ResourceSpans::descriptor(), "resource", 1, FieldDescriptor::TYPE_MESSAGE},
      {trace::ResourceSpans::descriptor(), "scope_spans", 2, FieldDescriptor::TYPE_MESSAGE},
      {trace::ResourceSpans::descriptor(), "schema_url", 3, FieldDescriptor::TYPE_STRING},
      {trace::ScopeSpans::descriptor(), "scope", 1, FieldDescriptor::TYPE_MESSAGE},
      {trace::ScopeSpans::descriptor(), "spans", 2, FieldDescriptor::TYPE_MESSAGE},
      {trace::Span::descriptor(), "trace_id", 1, FieldDescriptor::TYPE_BYTES},
      {trace::Span::descriptor(), "span_id", 2, FieldDescriptor::TYPE_BYTES},
      {trace::Span::descriptor(), "trace_state", 3, FieldDescriptor::TYPE_STRING},
      {trace::Span::descriptor(), "parent_span_id", 4, FieldDescriptor::TYPE_BYTES},
      {trace::Span::descriptor(), "name", 5, FieldDescriptor::TYPE_STRING},
      {trace::Span::descriptor(), "kind", 6, FieldDescriptor::TYPE_ENUM},
      {trace::Span::descriptor(), "start_time_unix_nano", 7, FieldDescriptor::TYPE_FIXED64},
      {trace::Span::descriptor(), "end_time_unix_nano", 8, FieldDescriptor::TYPE_FIXED64},
      {trace::Span::descriptor(), "attributes", 9, FieldDescriptor::TYPE_MESSAGE},
      {trace::Span::descriptor(), "dropped_attributes_count", 10, FieldDescriptor::TYPE_UINT32},
      {trace::Span::descriptor(), "events", 11, FieldDescriptor::TYPE_MESSAGE},
      {trace::Span::descriptor(), "dropped_events_count", 12, FieldDescriptor::TYPE_UINT32},
      {trace::Span::descriptor(), "links", 13, FieldDescriptor::TYPE_MESSAGE},
      {trace::Span::descriptor(), "dropped_links_count", 14, FieldDescriptor::TYPE_UINT32},
      {trace::Span::descriptor(), "status", 15, FieldDescriptor::TYPE_MESSAGE},
      {trace::Span::descriptor(), "flags", 16, FieldDescriptor::TYPE_FIXED32},
      {trace::Span::Event::descriptor(), "time_unix_nano", 1, FieldDescriptor::TYPE_FIXED64},
      {trace::Span::Event::descriptor(), "name", 2, FieldDescriptor::TYPE_STRING},
      {trace::Span::Event::descriptor(), "attributes", 3, FieldDescriptor::TYPE_MESSAGE},
      {trace::Span::Link::descriptor(), "flags", 6, FieldDescriptor::TYPE_FIXED32},
      {trace::Status::descriptor(), "message", 2, FieldDescriptor::TYPE_STRING},
      {trace::Status::descriptor(), "code", 3, FieldDescriptor::TYPE_ENUM},
      {common::AnyValue::descriptor(), "string_value", 1, FieldDescriptor::TYPE_STRING},
      {common::AnyValue::descriptor(), "bool_value", 2, FieldDescriptor::TYPE_BOOL},
      {common::AnyValue::descriptor(), "int_value", 3, FieldDescriptor::TYPE_INT64},
      {common::AnyValue::descriptor(), "double_value", 4, FieldDescriptor::TYPE_DOUBLE},
      {common::AnyValue::descriptor(), "array_value", 5, FieldDescriptor::TYPE_MESSAGE},
      {common::AnyValue::descriptor(), "kvlist_value", 6, FieldDescriptor::TYPE_MESSAGE},
      {common::AnyValue::descriptor(), "bytes_value", 7, FieldDescriptor::TYPE_BYTES},
      {common::KeyValue::descriptor(), "key", 1, FieldDescriptor::TYPE_STRING},
      {common::KeyValue::descriptor(), "value", 2, FieldDescriptor::TYPE_MESSAGE},
      {common::InstrumentationScope::descriptor(), "name", 1, FieldDescriptor::TYPE_STRING},
      {common::InstrumentationScope::descriptor(), "version", 2, FieldDescriptor::TYPE_STRING},
      {common::InstrumentationScope::descriptor(), "attributes", 3, FieldDescriptor::TYPE_MESSAGE},
      {opentelemetry::proto::resource::v1::Resource::descriptor(), "attributes", 1,
       FieldDescriptor::TYPE_MESSAGE},
      {opentelemetry::proto::resource::v1::Resource::descriptor(), "dropped_attributes_count", 2,
       FieldDescriptor::TYPE_UINT32},
      {OtlpExportRequest::descriptor(), "resource_spans", 1, FieldDescriptor::TYPE_MESSAGE},
      {opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse::descriptor(),
       "partial_success", 1, FieldDescriptor::TYPE_MESSAGE},
      {opentelemetry::proto::collector::trace::v1::ExportTracePartialSuccess::descriptor(),
       "rejected_spans", 1, FieldDescriptor::TYPE_INT64},
      {opentelemetry::proto::collector::trace::v1::ExportTracePartialSuccess::descriptor(),
       "error_message", 2, FieldDescriptor::TYPE_STRING},
  };
  for (const Expect& e : expects) {
    const FieldDescriptor* f = e.message->FindFieldByName(e.field);
    ASSERT_NE(f, nullptr) << e.message->full_name() << "." << e.field;
    EXPECT_EQ(f->number(), e.number) << e.message->full_name() << "." << e.field;
    EXPECT_EQ(f->type(), e.type) << e.message->full_name() << "." << e.field;
  }
  EXPECT_EQ(trace::Span::descriptor()->full_name(), "opentelemetry.proto.trace.v1.Span");
  EXPECT_EQ(trace::SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, 0x100);
  EXPECT_EQ(trace::SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK, 0x200);
  const auto* service = OtlpExportRequest::descriptor()->file()->FindServiceByName("TraceService");
  ASSERT_NE(service, nullptr);
  ASSERT_NE(service->FindMethodByName("Export"), nullptr);
  EXPECT_EQ("/" + service->full_name() + "/Export",
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export");
}

}  // namespace
}  // namespace hoptrace
