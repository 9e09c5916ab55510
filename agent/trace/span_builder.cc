#include "agent/trace/span_builder.h"

#include <time.h>

#include <algorithm>

#include "agent/hops/network_attributes.h"
#include "agent/trace/attribute_pool.h"

namespace hoptrace {
namespace {

uint64_t ToUnix(uint64_t monotonic_ns, const SpanBuildOptions& options) {
  return static_cast<uint64_t>(static_cast<int64_t>(monotonic_ns) + options.monotonic_to_unix_ns);
}

// semconv tls.protocol.version: "1.2", "1.3" (from the wire version).
std::string TlsVersionName(uint16_t wire) {
  if (wire < 0x0301 || wire > 0x0304) return "";
  return "1." + std::to_string(wire - 0x0301);
}

}  // namespace

int64_t MonotonicToUnixOffsetNs() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  auto ns = [](const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; };
  return ns(real) - ns(mono);
}

Span BuildSpan(const ConnInfo& conn, bool server, const Exchange& exchange,
               const SpanContextRecord& ctx, const std::optional<Closing>& closing,
               const ProcessInfo& process, const SpanBuildOptions& options) {
  Span span;
  span.trace_id = ctx.trace_id;
  span.span_id = ctx.span_id;
  span.parent_span_id = ctx.parent_span_id;
  span.flags = ctx.flags;
  span.trace_state = ctx.tracestate;
  span.kind = server ? SpanKind::kServer : SpanKind::kClient;
  span.name = exchange.details->SpanName();
  span.resource = process.resource;

  // A server's request has arrived when its read returns; a client's call
  // starts when it begins to write. Both end when the last response byte
  // has been written (server) or read (client).
  const MessageTiming& req = exchange.request;
  uint64_t start = server ? req.first_byte_ts_exit : req.first_byte_ts_enter;
  uint64_t end = exchange.response ? exchange.response->last_byte_ts_exit : req.last_byte_ts_exit;
  if (exchange.outcome != Exchange::Outcome::kComplete && closing) {
    end = std::max(end, closing->ts_ns);
  }
  end = std::max(end, start);
  span.start_unix_nano = ToUnix(start, options);
  span.end_unix_nano = ToUnix(end, options);

  auto& a = span.attributes;
  if (options.attribute_pool != nullptr) a = options.attribute_pool->Take();
  a.reserve(kSpanAttributeReserve);
  exchange.details->AddAttributes(conn, server, options, &span);
  if (conn.tuple_known) {
    AddAttribute(a, "network.peer.address", conn.RemoteAddress());
    AddAttribute(a, "network.peer.port", int64_t{conn.remote_port});
    AddAttribute(a, "network.local.address", conn.LocalAddress());
    AddAttribute(a, "network.local.port", int64_t{conn.local_port});
  }
  AddAttribute(a, "network.transport", "tcp");
  // Whatever the protocol inside: its bytes were TLS plaintext.
  if (conn.tls) {
    AddAttribute(a, "tls.protocol.name", "tls");
    if (auto v = TlsVersionName(conn.tls_version); !v.empty()) {
      AddAttribute(a, "tls.protocol.version", v);
    }
  }

  // An exchange that never got (all of) its response failed, whatever the
  // protocol; one that did is judged by the protocol.
  std::string error_type;
  if (exchange.outcome == Exchange::Outcome::kNoResponse) {
    error_type = closing && closing->reason == CloseReason::kProcessExit ? "process_exit"
                                                                          : "no_response";
    span.status_message = closing ? "connection ended before a response (" +
                                        std::string(CloseReasonName(closing->reason)) + ")"
                                  : "connection ended before a response";
  } else if (exchange.outcome == Exchange::Outcome::kResponseIncomplete) {
    error_type = "response_incomplete";
    span.status_message = "connection ended before the response was complete";
  }
  if (!error_type.empty()) {
    span.status = StatusCode::kError;
    AddAttribute(a, "error.type", error_type);
  } else {
    exchange.details->SetStatus(server, &span);
  }
  if (options.network) AddNetworkAttributes(conn, server, options, &span);
  return span;
}

}  // namespace hoptrace
