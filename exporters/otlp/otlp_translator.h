// Turns the agent's spans into the OTLP ExportTraceServiceRequest an OpenTelemetry SDK would
// send, so hoptrace's spans and SDK spans mix in one trace in a Collector, Jaeger or Tempo.
//
// Shape: one ResourceSpans per traced process (spans sharing the Resource object, or
// Resources with equal attributes), in order of first appearance; inside it one ScopeSpans
// for the agent's scope; spans in input order.
#pragma once

#include <string_view>
#include <vector>

#include "agent/trace/span.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace hoptrace {

using OtlpExportRequest = opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;

// Fills `out` (which should be empty; it may live on a protobuf Arena). Never throws other
// than std::bad_alloc.
void BuildExportRequest(const std::vector<Span>& spans, std::string_view scope_name,
                        std::string_view scope_version, OtlpExportRequest* out);

OtlpExportRequest BuildExportRequest(const std::vector<Span>& spans, std::string_view scope_name,
                                     std::string_view scope_version);

// One span, on its own. Exposed for tests.
void TranslateSpan(const Span& span, opentelemetry::proto::trace::v1::Span* out);

}  // namespace hoptrace
