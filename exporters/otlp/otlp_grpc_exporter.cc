#include "exporters/otlp/otlp_grpc_exporter.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "exporters/otlp/rpc_status.h"

namespace hoptrace {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;

std::string ReadPemFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  if (in) data << in.rdbuf();
  if (!in || data.str().empty()) {
    throw std::runtime_error("OTLP gRPC exporter: cannot read the " + std::string(what) +
                             " file \"" + path + "\"");
  }
  return data.str();
}

std::string_view GrpcCodeName(grpc::StatusCode code) {
  // Indexed by grpc::StatusCode.
  static constexpr std::string_view kNames[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  const int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "UNKNOWN_CODE";
}

std::shared_ptr<grpc::Channel> MakeChannel(const OtlpExporterOptions& options) {
  const GrpcTarget target = ResolveGrpcTarget(options);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (target.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) ssl.pem_root_certs = ReadPemFile(options.ca_file, "CA");
    if (!options.client_cert_file.empty()) {
      ssl.pem_cert_chain = ReadPemFile(options.client_cert_file, "client certificate");
      ssl.pem_private_key = ReadPemFile(options.client_key_file, "client key");
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  // "OTLP exporters SHOULD emit a User-Agent header to at a minimum identify the exporter".
  args.SetUserAgentPrefix("hoptrace-otlp-exporter/" HOPTRACE_VERSION);
  if (options.compression == OtlpCompression::kGzip) {
    args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  }
  // gRPC's reconnect back-off grows to 120 s; while it waits, every call fails at once with
  // UNAVAILABLE. Capping it at 5 s lets exports resume soon after a collector restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  return grpc::CreateCustomChannel(target.target, creds, args);
}

// TraceService/Export through a generic stub, which sends a ByteBuffer as it is: the
// generated stub would want the request as a message to serialize.
class ChannelTraceServiceStub final : public OtlpTraceServiceStub {
 public:
  explicit ChannelTraceServiceStub(std::shared_ptr<grpc::Channel> channel)
      : stub_(std::move(channel)) {}

  grpc::Status Export(grpc::ClientContext* context, const grpc::ByteBuffer& request,
                      collector::ExportTraceServiceResponse* response) override {
    static const std::string kMethod =
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    // The generic stub's unary call is asynchronous only; a blocking call is one that waits.
    grpc::ByteBuffer reply;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    stub_.UnaryCall(context, kMethod, grpc::StubOptions(), &request, &reply,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = std::move(s);
                      done = true;
                      cv.notify_one();
                    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    if (!status.ok()) return status;
    // A success without a readable response: what the generated stub reports for it.
    using ResponseTraits = grpc::SerializationTraits<collector::ExportTraceServiceResponse>;
    if (!reply.Valid() || !ResponseTraits::Deserialize(&reply, response).ok()) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "No message returned for unary request");
    }
    return status;
  }

 private:
  grpc::GenericStub stub_;
};

}  // namespace

GrpcTarget ResolveGrpcTarget(const OtlpExporterOptions& options) {
  const std::string endpoint = EffectiveOtlpEndpoint(options);
  std::string lower = endpoint.substr(0, 8);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  GrpcTarget out;
  std::string_view rest;
  std::string_view default_port;
  if (lower.rfind("https://", 0) == 0) {
    out.tls = true;
    rest = std::string_view(endpoint).substr(8);
    default_port = "443";
  } else if (lower.rfind("http://", 0) == 0) {
    out.tls = false;
    rest = std::string_view(endpoint).substr(7);
    default_port = "80";
  } else {
    // "OTEL_EXPORTER_OTLP_INSECURE ... only applies to OTLP/gRPC when an endpoint is provided
    // without the http or https scheme."
    out.target = endpoint;
    out.tls = !options.insecure;
    return out;
  }
  rest = rest.substr(0, rest.find('/'));   // host[:port]; the path has no meaning for gRPC
  const size_t bracket = rest.rfind(']');  // "[::1]:4317"
  const size_t colon = rest.rfind(':');
  const bool has_port =
      colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket);
  out.target = std::string(rest);
  if (!has_port) out.target += ":" + std::string(default_port);
  return out;
}

OtlpGrpcExporter::OtlpGrpcExporter(const OtlpExporterOptions& options, OtlpExporterHooks hooks)
    : OtlpGrpcExporter(options, std::make_unique<ChannelTraceServiceStub>(MakeChannel(options)),
                       std::move(hooks)) {}

OtlpGrpcExporter::OtlpGrpcExporter(const OtlpExporterOptions& options,
                                   std::unique_ptr<OtlpTraceServiceStub> stub,
                                   OtlpExporterHooks hooks)
    : OtlpExporterBase(options, "otlp-grpc", std::move(hooks)), stub_(std::move(stub)) {
  for (const auto& [key, value] : options.headers) {
    std::string k = key;
    std::transform(k.begin(), k.end(), k.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    // gRPC fails every call (INTERNAL) on metadata outside these sets; say so at start-up
    // instead of losing every batch. Keys: [0-9a-z-_.]; values: printable ASCII, unless the
    // key ends in "-bin" (then any bytes, base64-encoded by gRPC).
    const bool key_ok = std::all_of(k.begin(), k.end(), [](unsigned char c) {
      return std::isdigit(c) || std::islower(c) || c == '-' || c == '_' || c == '.';
    });
    const bool binary = k.size() > 4 && k.compare(k.size() - 4, 4, "-bin") == 0;
    const bool value_ok = binary || std::all_of(value.begin(), value.end(), [](unsigned char c) {
                            return c >= 0x20 && c <= 0x7e;
                          });
    if (k.empty() || !key_ok || !value_ok) {
      throw std::invalid_argument("OTLP gRPC exporter: header \"" + key +
                                  "\" cannot be sent as gRPC metadata");
    }
    metadata_.emplace_back(std::move(k), value);
  }
}

bool OtlpGrpcExporter::PrepareBatch(std::string_view request, std::string* /*error*/) {
  grpc::Slice slice(request.data(), request.size());  // a copy
  request_ = grpc::ByteBuffer(&slice, 1);
  return true;
}

void OtlpGrpcExporter::CancelAttempt() noexcept {
  std::lock_guard<std::mutex> lock(in_flight_mu_);
  if (in_flight_ != nullptr) in_flight_->TryCancel();
}

AttemptResult OtlpGrpcExporter::SendAttempt(std::chrono::milliseconds timeout) noexcept {
  AttemptResult result;
  try {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    // Without wait_for_ready a call on a channel in TRANSIENT_FAILURE fails at
    // once, and gRPC only notices a collector that came back at its next
    // background poll (~5 s): every batch of that window would be lost. With
    // it, the call waits (up to the deadline) for the reconnect.
    ctx.set_wait_for_ready(true);
    for (const auto& [key, value] : metadata_) ctx.AddMetadata(key, value);
    // Also per call: an injected stub has no channel with our defaults.
    if (options().compression == OtlpCompression::kGzip) {
      ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    }
    collector::ExportTraceServiceResponse response;
    {
      std::lock_guard<std::mutex> lock(in_flight_mu_);
      // Cancel() may have come just before this attempt registered itself.
      if (cancelled()) ctx.TryCancel();
      in_flight_ = &ctx;
    }
    const grpc::Status status = stub_->Export(&ctx, request_, &response);
    {
      std::lock_guard<std::mutex> lock(in_flight_mu_);
      in_flight_ = nullptr;
    }
    if (status.ok()) {
      if (response.has_partial_success()) {
        result.rejected_spans = response.partial_success().rejected_spans();
        result.partial_success_message = response.partial_success().error_message();
      }
      return result;
    }
    const grpc::StatusCode code = status.error_code();
    std::optional<RpcStatus> details;
    if (!status.error_details().empty()) details = DecodeRpcStatus(status.error_details());
    const bool has_retry_info = details && details->retry_delay.has_value();
    result.outcome = IsRetryableGrpcCode(code, has_retry_info) ? AttemptOutcome::kRetryable
                                                               : AttemptOutcome::kNonRetryable;
    result.timed_out = code == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (has_retry_info) result.server_delay = details->retry_delay;
    result.error =
        "grpc " + std::string(GrpcCodeName(code)) + ": " + status.error_message().substr(0, 200);
  } catch (...) {
    result = AttemptResult{};
    result.outcome = AttemptOutcome::kNonRetryable;
    result.error = "out of memory";
  }
  return result;
}

}  // namespace hoptrace
