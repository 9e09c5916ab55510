#include "agent/protocols/http2/exchange_details.h"

#include <array>
#include <charconv>

#include "agent/protocols/http1/protocol.h"
#include "agent/trace/span.h"
#include "agent/trace/span_builder.h"

namespace hoptrace::http2 {
namespace {

constexpr std::array<std::string_view, 17> kGrpcStatusNames = {
    "OK",           "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",    "ALREADY_EXISTS", "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",         "UNAVAILABLE",    "DATA_LOSS",
    "UNAUTHENTICATED",
};

struct HostPort {
  std::string_view host;
  std::optional<int64_t> port;
};

// :authority is "host [ ':' port ]" (RFC 9113 8.3.1, RFC 3986 authority
// without userinfo); host may be "[v6]".
HostPort SplitAuthority(std::string_view a) {
  HostPort out{a, std::nullopt};
  std::string_view digits;
  if (!a.empty() && a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return out;
    out.host = a.substr(1, close - 1);
    if (close + 1 < a.size() && a[close + 1] == ':') digits = a.substr(close + 2);
  } else if (const size_t colon = a.rfind(':'); colon != std::string_view::npos) {
    out.host = a.substr(0, colon);
    digits = a.substr(colon + 1);
  }
  int64_t port = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (!digits.empty() && ec == std::errc() && p == digits.data() + digits.size() && port > 0 &&
      port < 65536) {
    out.port = port;
  }
  return out;
}

}  // namespace

bool IsGrpc(const Message& request) {
  constexpr std::string_view kGrpc = "application/grpc";
  const std::string_view ct = request.content_type;
  return ct.substr(0, kGrpc.size()) == kGrpc &&
         (ct.size() == kGrpc.size() || ct[kGrpc.size()] == '+' || ct[kGrpc.size()] == ';');
}

bool SplitGrpcPath(std::string_view path, std::string_view* service, std::string_view* method) {
  // grpc PROTOCOL-HTTP2.md: Path → ":path" "/" Service-Name "/" {method name}
  if (path.size() < 4 || path[0] != '/') return false;
  const size_t slash = path.find('/', 1);
  if (slash == std::string_view::npos || slash == 1 || slash + 1 == path.size()) return false;
  if (path.find('/', slash + 1) != std::string_view::npos) return false;
  *service = path.substr(1, slash - 1);
  *method = path.substr(slash + 1);
  return true;
}

bool GrpcStatusIsError(int code, bool server) {
  if (!server) return code != 0;
  switch (code) {
    case 2:   // UNKNOWN
    case 4:   // DEADLINE_EXCEEDED
    case 12:  // UNIMPLEMENTED
    case 13:  // INTERNAL
    case 14:  // UNAVAILABLE
    case 15:  // DATA_LOSS
      return true;
    default:
      return false;
  }
}

std::string_view GrpcStatusName(int code) {
  return code >= 0 && code < static_cast<int>(kGrpcStatusNames.size()) ? kGrpcStatusNames[code]
                                                                       : std::string_view();
}

Http2ExchangeDetails::Http2ExchangeDetails(Message request, std::optional<Message> response)
    : request_(std::move(request)), response_(std::move(response)), grpc_(IsGrpc(request_)) {}

std::string Http2ExchangeDetails::SpanName() const {
  std::string_view service, method;
  if (grpc_ && SplitGrpcPath(request_.path, &service, &method)) {
    // Semconv rpc span name: "$package.$service/$method".
    std::string name(service);
    name.push_back('/');
    name.append(method);
    return name;
  }
  return http1::SpanNameFor(request_.method);
}

void Http2ExchangeDetails::AddAttributes(const ConnInfo& conn, bool server,
                                         const SpanBuildOptions& options, Span* span) const {
  auto& a = span->attributes;
  if (grpc_) {
    AddGrpcAttributes(span);
  } else {
    AddHttpAttributes(conn, server, options, span);
  }
  const HostPort authority = SplitAuthority(request_.authority);
  if (!authority.host.empty()) {
    AddAttribute(a, "server.address", authority.host);
  } else {
    const std::string addr = server ? conn.LocalAddress() : conn.RemoteAddress();
    if (!addr.empty()) AddAttribute(a, "server.address", addr);
  }
  if (authority.port) {
    AddAttribute(a, "server.port", *authority.port);
  } else if (conn.tuple_known) {
    AddAttribute(a, "server.port", int64_t{server ? conn.local_port : conn.remote_port});
  }
  if (server) {
    if (const std::string remote = conn.RemoteAddress(); !remote.empty()) {
      AddAttribute(a, "client.address", remote);
      AddAttribute(a, "client.port", int64_t{conn.remote_port});
    }
  }
  AddAttribute(a, "network.protocol.name", "http");
  AddAttribute(a, "network.protocol.version", "2");
  if (!request_.user_agent.empty()) {
    AddAttribute(a, "user_agent.original", request_.user_agent);
  }
  if (request_.headers_incomplete || (response_ && response_->headers_incomplete)) {
    // Some fields were lost (HPACK state unknown): absent attributes may be unknown, not absent.
    AddAttribute(a, "hoptrace.http2.headers_incomplete", true);
  }
}

void Http2ExchangeDetails::AddHttpAttributes(const ConnInfo& conn, bool server,
                                             const SpanBuildOptions& options, Span* span) const {
  auto& a = span->attributes;
  const std::string& method = request_.method;
  if (!method.empty()) {
    const std::string name = http1::SpanNameFor(method);
    if (name == method) {
      AddAttribute(a, "http.request.method", method);
    } else {
      AddAttribute(a, "http.request.method", "_OTHER");
      AddAttribute(a, "http.request.method_original", method);
    }
  }
  std::string_view target = request_.path;
  std::string_view path = target, query;
  if (const size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  const std::string shown_query =
      options.redact_query ? http1::RedactQuery(query) : std::string(query);
  const std::string scheme = request_.scheme.empty() ? "http" : request_.scheme;
  if (server) {
    AddAttribute(a, "url.scheme", scheme);
    if (!path.empty()) AddAttribute(a, "url.path", path);
    if (!query.empty()) AddAttribute(a, "url.query", shown_query);
  } else if (!path.empty()) {
    std::string authority = request_.authority;
    if (authority.empty()) {
      authority = conn.RemoteAddress() + ":" + std::to_string(conn.remote_port);
    }
    std::string full = scheme + "://" + authority + std::string(path);
    if (!query.empty()) full += "?" + shown_query;
    AddAttribute(a, "url.full", full);
  }
  if (response_ && response_->status != 0) {
    AddAttribute(a, "http.response.status_code", int64_t{response_->status});
  }
}

void Http2ExchangeDetails::AddGrpcAttributes(Span* span) const {
  auto& a = span->attributes;
  AddAttribute(a, "rpc.system", "grpc");
  std::string_view service, method;
  if (SplitGrpcPath(request_.path, &service, &method)) {
    AddAttribute(a, "rpc.service", service);
    AddAttribute(a, "rpc.method", method);
  }
  if (response_ && response_->grpc_status >= 0) {
    AddAttribute(a, "rpc.grpc.status_code", int64_t{response_->grpc_status});
  }
}

void Http2ExchangeDetails::SetStatus(bool server, Span* span) const {
  if (!response_) return;
  std::string error_type;
  if (grpc_ && response_->grpc_status >= 0) {
    if (GrpcStatusIsError(response_->grpc_status, server)) {
      const std::string_view name = GrpcStatusName(response_->grpc_status);
      error_type = name.empty() ? std::to_string(response_->grpc_status) : std::string(name);
    }
  } else if (response_->status >= 500 || (response_->status >= 400 && (!server || grpc_))) {
    // A gRPC call answered with an HTTP error and no grpc-status failed
    // before any handler ran (grpc: "HTTP to gRPC Status Code Mapping").
    error_type = std::to_string(response_->status);
  }
  if (!error_type.empty()) {
    span->status = StatusCode::kError;
    AddAttribute(span->attributes, "error.type", error_type);
  }
}

std::optional<std::string_view> Http2ExchangeDetails::Traceparent() const {
  if (request_.traceparent.empty()) return std::nullopt;
  return request_.traceparent;
}

std::optional<std::string_view> Http2ExchangeDetails::Tracestate() const {
  if (request_.tracestate.empty()) return std::nullopt;
  return request_.tracestate;
}

}  // namespace hoptrace::http2
