// The one entry point the agent needs:
//
//   auto options = OtlpOptionsFromProcessEnv();          // or build OtlpExporterOptions
//   if (!options.ok()) throw std::runtime_error(options.error());
//   std::unique_ptr<OtlpExporterBase> otlp = MakeOtlpExporter(options.value());
//   auto counters = otlp->counters();                    // keep for metrics
//   sinks.push_back(std::move(otlp));                    // SpanPipeline owns the sink
//   ... counters->Snapshot().spans_exported ...
#pragma once

#include <memory>

#include "exporters/otlp/otlp_exporter_base.h"
#include "exporters/otlp/otlp_options.h"

namespace hoptrace {

// A gRPC or HTTP/protobuf exporter per options.protocol. Call it at start-up: it throws
// std::invalid_argument for invalid options and std::runtime_error when a TLS file cannot be
// read or libcurl cannot start, with a message that says what to fix. Never connects here.
std::unique_ptr<OtlpExporterBase> MakeOtlpExporter(const OtlpExporterOptions& options,
                                                   OtlpExporterHooks hooks = {});

}  // namespace hoptrace
