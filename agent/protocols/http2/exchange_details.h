// The HTTP/2 half of a span: OpenTelemetry HTTP semantic conventions for
// plain HTTP/2 exchanges, RPC (gRPC) conventions for gRPC calls.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "agent/protocols/http2/types.h"
#include "agent/protocols/protocol.h"

namespace hoptrace::http2 {

// gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): "Content-Type →
// application/grpc [("+proto" / "+json" / {custom})]".
bool IsGrpc(const Message& request);

// "/package.Service/Method" -> service "package.Service", method "Method".
// False if the path is not of that form.
bool SplitGrpcPath(std::string_view path, std::string_view* service, std::string_view* method);

// Semconv (rpc spans, gRPC): "For gRPC server spans, the following status
// codes are considered errors: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
// INTERNAL, UNAVAILABLE, DATA_LOSS"; on client spans every non-OK code is.
bool GrpcStatusIsError(int code, bool server);
std::string_view GrpcStatusName(int code);  // "UNAVAILABLE"; "" if not a known code

class Http2ExchangeDetails final : public ExchangeDetails {
 public:
  Http2ExchangeDetails(Message request, std::optional<Message> response);

  std::string SpanName() const override;
  void AddAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                     Span* span) const override;
  void SetStatus(bool server, Span* span) const override;
  std::optional<std::string_view> Traceparent() const override;
  std::optional<std::string_view> Tracestate() const override;

  const Message& request() const { return request_; }
  const std::optional<Message>& response() const { return response_; }

 private:
  void AddHttpAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                         Span* span) const;
  void AddGrpcAttributes(Span* span) const;

  Message request_;
  std::optional<Message> response_;
  bool grpc_;
};

}  // namespace hoptrace::http2
