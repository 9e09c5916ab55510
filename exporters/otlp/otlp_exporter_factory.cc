#include "exporters/otlp/otlp_exporter_factory.h"

#include <stdexcept>

#include "exporters/otlp/otlp_grpc_exporter.h"
#include "exporters/otlp/otlp_http_exporter.h"

namespace hoptrace {

std::unique_ptr<OtlpExporterBase> MakeOtlpExporter(const OtlpExporterOptions& options,
                                                   OtlpExporterHooks hooks) {
  if (auto error = ValidateOtlpOptions(options)) throw std::invalid_argument(*error);
  switch (options.protocol) {
    case OtlpProtocol::kGrpc:
      return std::make_unique<OtlpGrpcExporter>(options, std::move(hooks));
    case OtlpProtocol::kHttpProtobuf:
      return std::make_unique<OtlpHttpExporter>(options, std::move(hooks));
  }
  throw std::invalid_argument("unknown OTLP protocol");
}

}  // namespace hoptrace
