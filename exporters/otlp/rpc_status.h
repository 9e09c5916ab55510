// google.rpc.Status, read and written without its .proto: OTLP servers send it as the body
// of a failed OTLP/HTTP response and in the grpc-status-details-bin trailer of a failed RPC,
// where a google.rpc.RetryInfo detail says how long to wait (OTLP "Throttling"). Debian ships
// no C++ for googleapis' protos, and these few fields are stable, so they are decoded
// field-by-number with protobuf's UnknownFieldSet:
//   Status    { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
//   Any       { string type_url = 1; bytes value = 2; }
//   RetryInfo { google.protobuf.Duration retry_delay = 1; }
//   Duration  { int64 seconds = 1; int32 nanos = 2; }
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace hoptrace {

struct RpcStatus {
  int code = 0;
  std::string message;
  // From the first RetryInfo detail; nullopt when there is none.
  std::optional<std::chrono::nanoseconds> retry_delay;
};

// nullopt when `bytes` is not a protobuf message (e.g. an HTML error page).
std::optional<RpcStatus> DecodeRpcStatus(std::string_view bytes);

// The inverse, for servers in tests and benchmarks.
std::string EncodeRpcStatus(const RpcStatus& status);

}  // namespace hoptrace
