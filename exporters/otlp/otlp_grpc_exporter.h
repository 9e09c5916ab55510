// OTLP/gRPC trace exporter: one unary TraceService/Export call per batch over a long-lived
// channel, as an OpenTelemetry SDK sends it.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "exporters/otlp/otlp_exporter_base.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace hoptrace {

// The one call the exporter makes: TraceService/Export, with the request already encoded
// (OtlpWireEncoder), so no ExportTraceServiceRequest is built to be serialized again. The
// real one is a generic stub on the channel; tests put their own in its place.
class OtlpTraceServiceStub {
 public:
  virtual ~OtlpTraceServiceStub() = default;
  // Blocks until the call ends. `request` holds the bytes of an ExportTraceServiceRequest.
  virtual grpc::Status Export(
      grpc::ClientContext* context, const grpc::ByteBuffer& request,
      opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse* response) = 0;
};

// Where the channel connects and whether it uses TLS: "https://h:p" -> ("h:p", TLS),
// "http://h:p" -> ("h:p", plain text), any other gRPC target -> (as is, TLS unless insecure).
// A URL without a port gets its scheme's (443 or 80); a URL path is ignored.
struct GrpcTarget {
  std::string target;
  bool tls = false;
};
GrpcTarget ResolveGrpcTarget(const OtlpExporterOptions& options);

class OtlpGrpcExporter final : public OtlpExporterBase {
 public:
  // Connects lazily (the first export). Throws std::runtime_error when a TLS file named in the
  // options cannot be read, std::invalid_argument for a header gRPC cannot carry.
  explicit OtlpGrpcExporter(const OtlpExporterOptions& options, OtlpExporterHooks hooks = {});
  // Test seam: calls go to `stub`; options.endpoint and the TLS settings are not used.
  OtlpGrpcExporter(const OtlpExporterOptions& options, std::unique_ptr<OtlpTraceServiceStub> stub,
                   OtlpExporterHooks hooks = {});

 private:
  bool PrepareBatch(std::string_view request, std::string* error) override;
  AttemptResult SendAttempt(std::chrono::milliseconds timeout) noexcept override;
  void CancelAttempt() noexcept override;

  std::unique_ptr<OtlpTraceServiceStub> stub_;
  std::mutex in_flight_mu_;
  grpc::ClientContext* in_flight_ = nullptr;  // the call under way, for CancelAttempt()
  OtlpHeaders metadata_;  // keys lower-cased: gRPC rejects upper-case metadata keys
  // The batch being sent, copied once into a gRPC slice that every attempt shares: gRPC does
  // not promise to be done with a message's bytes when its call returns, and the encoder
  // reuses its buffer for the next batch.
  grpc::ByteBuffer request_;
};

}  // namespace hoptrace
