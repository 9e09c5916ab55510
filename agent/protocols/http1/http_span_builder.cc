#include "agent/protocols/http1/http_span_builder.h"

#include <time.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "agent/hops/network_attributes.h"

namespace hoptrace {
namespace {

// semconv http.request.method: "known" methods are RFC 9110's plus PATCH.
constexpr std::array<std::string_view, 9> kKnownMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};

bool IsKnownMethod(std::string_view m) {
  return std::find(kKnownMethods.begin(), kKnownMethods.end(), m) != kKnownMethods.end();
}

struct HostPort {
  std::string host;
  std::optional<int64_t> port;
};

// Host = uri-host [ ":" port ] (RFC 9110 7.2); uri-host may be "[v6]".
HostPort ParseHost(std::string_view host) {
  HostPort out;
  size_t colon = std::string_view::npos;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return {std::string(host), {}};
    out.host = std::string(host.substr(1, close - 1));
    if (close + 1 < host.size() && host[close + 1] == ':') colon = close + 1;
  } else {
    colon = host.rfind(':');
    out.host = std::string(host.substr(0, colon));
  }
  if (colon != std::string_view::npos) {
    int64_t port = 0;
    auto digits = host.substr(colon + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec == std::errc() && p == digits.data() + digits.size() && port > 0 && port < 65536) {
      out.port = port;
    }
  }
  return out;
}

// semconv tls.protocol.version: "1.2", "1.3" (from the wire version).
std::string TlsVersionName(uint16_t wire) {
  if (wire < 0x0301 || wire > 0x0304) return "";
  return "1." + std::to_string(wire - 0x0301);
}

std::string_view ProtocolVersion(const http1::Message& m) {
  return m.minor_version == 0 ? "1.0" : "1.1";
}

}  // namespace

std::string RedactQuery(std::string_view query) {
  std::string out;
  out.reserve(query.size());
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string_view param = query.substr(pos, amp == std::string_view::npos ? amp : amp - pos);
    size_t eq = param.find('=');
    if (eq == std::string_view::npos) {
      out.append(param);
    } else {
      out.append(param.substr(0, eq + 1)).append("REDACTED");
    }
    if (amp == std::string_view::npos) break;
    out.push_back('&');
    pos = amp + 1;
  }
  return out;
}

std::string SpanNameFor(std::string_view method) {
  return IsKnownMethod(method) ? std::string(method) : "HTTP";
}

int64_t MonotonicToUnixOffsetNs() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  auto ns = [](const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
  return ns(real) - ns(mono);
}

// HTTP semantic-convention attributes (up to ~14) plus network ones (~10).
constexpr size_t kSpanAttributeReserve = 28;

Span BuildHttpSpan(const ConnInfo& conn, bool server, const http1::Record& record,
                   const SpanContextRecord& ctx, const std::optional<Closing>& closing,
                   const ProcessInfo& process, const SpanBuildOptions& options) {
  const http1::Message& req = record.request;
  const http1::Message* resp = record.response ? &*record.response : nullptr;

  Span span;
  span.trace_id = ctx.trace_id;
  span.span_id = ctx.span_id;
  span.parent_span_id = ctx.parent_span_id;
  span.flags = ctx.flags;
  span.trace_state = ctx.tracestate;
  span.kind = server ? SpanKind::kServer : SpanKind::kClient;
  span.name = SpanNameFor(req.method);
  span.resource = process.resource;

  // A server's request has arrived when its read returns; a client's call
  // starts when it begins to write. Both end when the last response byte
  // has been written (server) or read (client).
  uint64_t start = server ? req.first_byte_ts_exit : req.first_byte_ts_enter;
  uint64_t end = resp ? resp->last_byte_ts_exit : req.last_byte_ts_exit;
  if (record.outcome != http1::Record::Outcome::kComplete && closing) {
    end = std::max(end, closing->ts_ns);
  }
  end = std::max(end, start);
  span.start_unix_nano = static_cast<uint64_t>(static_cast<int64_t>(start) + options.monotonic_to_unix_ns);
  span.end_unix_nano = static_cast<uint64_t>(static_cast<int64_t>(end) + options.monotonic_to_unix_ns);

  // Target split into path and query (RFC 9112 3.2: origin-form is
  // absolute-path [ "?" query ]; absolute-form is used towards proxies).
  std::string_view target = req.target;
  std::string_view path = target, query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  std::string shown_query = options.redact_query ? RedactQuery(query) : std::string(query);

  auto& a = span.attributes;
  // Room for the HTTP and network attributes of a span at once: growing the
  // vector one attribute at a time was a fifth of the agent's CPU.
  a.reserve(kSpanAttributeReserve);
  if (IsKnownMethod(req.method)) {
    AddAttribute(a, "http.request.method", req.method);
  } else {
    AddAttribute(a, "http.request.method", std::string("_OTHER"));
    AddAttribute(a, "http.request.method_original", req.method);
  }
  auto host_header = req.Header("host");
  HostPort host = host_header ? ParseHost(*host_header) : HostPort{};
  const std::string local = conn.LocalAddress();
  const std::string remote = conn.RemoteAddress();

  const std::string scheme = conn.tls ? "https" : "http";
  if (server) {
    AddAttribute(a, "url.scheme", scheme);
    AddAttribute(a, "url.path", std::string(path));
    if (!query.empty()) AddAttribute(a, "url.query", shown_query);
    if (!host.host.empty()) {
      AddAttribute(a, "server.address", host.host);
      if (host.port) AddAttribute(a, "server.port", *host.port);
    } else if (!local.empty()) {
      AddAttribute(a, "server.address", local);
    }
    if (!host.port && conn.tuple_known) AddAttribute(a, "server.port", int64_t{conn.local_port});
    if (!remote.empty()) {
      AddAttribute(a, "client.address", remote);
      AddAttribute(a, "client.port", int64_t{conn.remote_port});
    }
  } else {
    std::string authority = host_header ? std::string(*host_header)
                                        : (remote + ":" + std::to_string(conn.remote_port));
    std::string full = scheme + "://" + authority + std::string(path);
    if (!query.empty()) full += "?" + shown_query;
    if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
      full = options.redact_query && !query.empty()
                 ? std::string(target.substr(0, target.find('?') + 1)) + shown_query
                 : std::string(target);
    }
    AddAttribute(a, "url.full", full);
    AddAttribute(a, "server.address", host.host.empty() ? remote : host.host);
    if (host.port) {
      AddAttribute(a, "server.port", *host.port);
    } else if (conn.tuple_known) {
      AddAttribute(a, "server.port", int64_t{conn.remote_port});
    }
  }
  if (!remote.empty()) {
    AddAttribute(a, "network.peer.address", remote);
    AddAttribute(a, "network.peer.port", int64_t{conn.remote_port});
  }
  if (!local.empty()) {
    AddAttribute(a, "network.local.address", local);
    AddAttribute(a, "network.local.port", int64_t{conn.local_port});
  }
  AddAttribute(a, "network.transport", std::string("tcp"));
  AddAttribute(a, "network.protocol.name", std::string("http"));
  AddAttribute(a, "network.protocol.version", std::string(ProtocolVersion(req)));
  if (conn.tls) {
    AddAttribute(a, "tls.protocol.name", std::string("tls"));
    if (auto v = TlsVersionName(conn.tls_version); !v.empty()) {
      AddAttribute(a, "tls.protocol.version", v);
    }
  }
  if (auto ua = req.Header("user-agent")) AddAttribute(a, "user_agent.original", std::string(*ua));
  if (req.content_length >= 0) AddAttribute(a, "http.request.body.size", req.content_length);
  if (resp) {
    AddAttribute(a, "http.response.status_code", int64_t{resp->status_code});
    if (resp->content_length >= 0) AddAttribute(a, "http.response.body.size", resp->content_length);
  }
  if (req.head_truncated || (resp && resp->head_truncated)) {
    AddAttribute(a, "hoptrace.http.head_truncated", true);
  }

  // Status (semconv http spans): server spans are errors for 5xx only,
  // client spans for 4xx and 5xx; with no response, the error is why.
  std::string error_type;
  if (record.outcome == http1::Record::Outcome::kNoResponse) {
    error_type = closing && closing->reason == CloseReason::kProcessExit ? "process_exit"
                                                                          : "no_response";
    span.status_message = closing ? "connection ended before a response (" +
                                        std::string(CloseReasonName(closing->reason)) + ")"
                                  : "connection ended before a response";
  } else if (record.outcome == http1::Record::Outcome::kResponseIncomplete) {
    error_type = "response_incomplete";
    span.status_message = "connection ended before the response was complete";
  } else if (resp && (resp->status_code >= 500 || (!server && resp->status_code >= 400))) {
    error_type = std::to_string(resp->status_code);
  }
  if (!error_type.empty()) {
    span.status = StatusCode::kError;
    AddAttribute(a, "error.type", error_type);
  }
  if (options.network) AddNetworkAttributes(conn, server, options, &span);
  return span;
}

}  // namespace hoptrace
