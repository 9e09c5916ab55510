// Configuration of the OTLP trace exporters, and how it is read from the standard
// OTEL_EXPORTER_OTLP_* environment variables (OpenTelemetry specification, "OpenTelemetry
// Protocol Exporter", and "Environment Variable Specification").
//
// Deliberate choices, where the spec leaves room or where hoptrace differs:
// - The default protocol is grpc (endpoint http://localhost:4317). The spec's SDK default is
//   http/protobuf; an agent is deployed next to a Collector, whose gRPC receiver is the one
//   every distribution enables, and the project's issue asked for gRPC first.
// - A value that cannot be parsed is an error, not "warn and ignore" (the spec's SHOULD for
//   numbers and enums): a node agent that silently sends to localhost because of a typo loses
//   every span; failing at start-up with the variable's name is easier to act on.
// - A signal-specific variable (OTEL_EXPORTER_OTLP_TRACES_*) replaces the generic one as a
//   whole; headers from the two are not merged.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace hoptrace {

// A value or an error message: errors as values, as everywhere in the pipeline.
template <typename T>
class OtlpResult {
 public:
  static OtlpResult Ok(T value) { return OtlpResult(std::in_place_index<0>, std::move(value)); }
  static OtlpResult Error(std::string message) {
    return OtlpResult(std::in_place_index<1>, std::move(message));
  }

  bool ok() const { return v_.index() == 0; }
  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const std::string& error() const { return std::get<1>(v_); }

 private:
  template <size_t I, typename U>
  OtlpResult(std::in_place_index_t<I> tag, U&& u) : v_(tag, std::forward<U>(u)) {}
  std::variant<T, std::string> v_;
};

enum class OtlpProtocol { kGrpc, kHttpProtobuf };
enum class OtlpCompression { kNone, kGzip };

std::string_view OtlpProtocolName(OtlpProtocol protocol);  // "grpc", "http/protobuf"

struct OtlpRetryOptions {
  // Attempts per batch, the first included. 1 = never retry.
  int max_attempts = 5;
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{5000};
  double multiplier = 1.5;
};

using OtlpHeaders = std::vector<std::pair<std::string, std::string>>;

struct OtlpExporterOptions {
  OtlpProtocol protocol = OtlpProtocol::kGrpc;
  // grpc: "http://host:port" (plain text), "https://host:port" (TLS), or any gRPC target
  // ("host:port", "dns:///host:port", "unix:///path"; TLS unless `insecure`).
  // http/protobuf: the full URL the POST goes to (".../v1/traces").
  // Empty = the protocol's default (DefaultOtlpEndpoint).
  std::string endpoint;
  // Sent with every request: gRPC metadata (keys lower-cased) or HTTP headers.
  OtlpHeaders headers;
  // Deadline of one attempt (one RPC or one POST).
  std::chrono::milliseconds timeout{10000};
  // Bound on one Export() call, all attempts and back-off included. 0 = 2 * timeout.
  std::chrono::milliseconds max_export_time{0};
  OtlpCompression compression = OtlpCompression::kNone;
  // gRPC only, and only for an endpoint without an http:// or https:// scheme, as the spec
  // says: plain text instead of TLS.
  bool insecure = false;
  // PEM files. Empty = the system's trust store / no client certificate.
  std::string ca_file;
  std::string client_cert_file;
  std::string client_key_file;
  OtlpRetryOptions retry;
  // InstrumentationScope of every exported span.
  std::string scope_name = "hoptrace";
  std::string scope_version = "";  // empty = the agent's version
};

// "http://localhost:4317" for grpc, "http://localhost:4318/v1/traces" for http/protobuf.
std::string_view DefaultOtlpEndpoint(OtlpProtocol protocol);
// options.endpoint, or the protocol's default when it is empty.
std::string EffectiveOtlpEndpoint(const OtlpExporterOptions& options);
// options.max_export_time, or 2 * timeout when it is 0.
std::chrono::milliseconds EffectiveMaxExportTime(const OtlpExporterOptions& options);

// Checks what the environment cannot express wrongly but code can (empty values, zero
// timeouts, attempts < 1, an http/protobuf endpoint without http(s)://). The factory calls it.
std::optional<std::string> ValidateOtlpOptions(const OtlpExporterOptions& options);

// Returns nullopt when the variable is unset. An empty value counts as unset (the spec: "The
// SDK MUST interpret an empty value of an environment variable the same way as when the
// variable is unset").
using OtlpGetenv = std::function<std::optional<std::string>(std::string_view)>;

// Reads OTEL_EXPORTER_OTLP_{,TRACES_}{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT,COMPRESSION,INSECURE,
// CERTIFICATE,CLIENT_CERTIFICATE,CLIENT_KEY} through `getenv`. Unset variables keep the
// defaults above. The error names the variable and its value.
OtlpResult<OtlpExporterOptions> OtlpOptionsFromEnv(const OtlpGetenv& getenv);
// The same over the process environment (std::getenv).
OtlpResult<OtlpExporterOptions> OtlpOptionsFromProcessEnv();

// Parses "k1=v1,k2=v2" (W3C Baggage list syntax without ";" properties): whitespace around
// members, keys and values is trimmed, values are percent-decoded, empty members are skipped.
OtlpResult<OtlpHeaders> ParseOtlpHeaders(std::string_view text);

}  // namespace hoptrace
