// The protocol interface: how the bytes of one connection become exchanges
// (request + response) that the trace stage turns into spans, whatever the
// protocol.
//
//   ConnTracker --OnData/OnClose--> ProtocolParser --OnRequestStart/OnExchange--> ExchangeSink
//
// A protocol is one folder agent/protocols/<name>/ that defines a Protocol
// (its name, the kernel's tag for it, a recogniser of its first bytes and a
// parser factory) and one line in protocols/registry.cc. The connection
// tracker, the trace stitcher and the exporters know nothing of any protocol:
// everything protocol-specific about a span (name, attributes, status) comes
// from the exchange's ExchangeDetails.
//
// Threading: a parser belongs to its connection and is called from the one
// thread that feeds the connection tracker; it never blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "agent/connections/connection.h"
#include "socket_trace.h"

namespace hoptrace {

struct Span;
struct SpanBuildOptions;

// Which way requests flow on a connection, from the traced process's view.
enum class Role {
  kUnknown,  // decided by the first message seen (request in -> server)
  kServer,   // requests are read, responses written
  kClient,   // requests are written, responses read
};

enum class Direction { kEgress, kIngress };

// When the bytes of one message moved: CLOCK_MONOTONIC ns of the syscalls
// (or library calls, for TLS plaintext) that moved its first and last bytes.
struct MessageTiming {
  uint64_t first_byte_ts_enter = 0;
  uint64_t first_byte_ts_exit = 0;
  uint64_t last_byte_ts_enter = 0;
  uint64_t last_byte_ts_exit = 0;
  uint32_t tid = 0;  // thread that moved the first byte
};

// The protocol's half of a span. The trace stage sets ids, kind, times,
// resource and the connection's network attributes; the details add the rest.
class ExchangeDetails {
 public:
  virtual ~ExchangeDetails() = default;
  // Span name per the protocol's semantic conventions ("GET", "SELECT users",
  // "helloworld.Greeter/SayHello").
  virtual std::string SpanName() const = 0;
  // The protocol's attributes (http.*, url.*, db.*, rpc.*, server.address,
  // network.protocol.*). Called once per span.
  virtual void AddAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                             Span* span) const = 0;
  // For an exchange with a response: error status and error.type if the
  // response says it failed (HTTP 5xx, SQLSTATE, gRPC status). Exchanges
  // without a (complete) response get their error from the trace stage.
  virtual void SetStatus(bool server, Span* span) const = 0;
  // W3C context the request carried in-band (HTTP headers, gRPC metadata).
  virtual std::optional<std::string_view> Traceparent() const { return std::nullopt; }
  virtual std::optional<std::string_view> Tracestate() const { return std::nullopt; }
};

// A request as soon as its start is parsed (HTTP head, a query message),
// before its response: the moment trace context is decided.
struct RequestStart {
  uint64_t exchange_id = 0;  // the id its Exchange will carry
  MessageTiming timing;      // of the bytes seen so far
  std::optional<std::string_view> traceparent;  // in-band context, if any
  std::optional<std::string_view> tracestate;
};

// One request and its response (or what is known of it when it ended).
struct Exchange {
  enum class Outcome {
    kComplete,            // request and full response
    kResponseIncomplete,  // response started, cut short (close, reset)
    kNoResponse,          // connection ended before any response
  };
  // Unique per connection; OnRequestStart announced it. Exchanges of a
  // multiplexed protocol (HTTP/2 streams) may end in any order.
  uint64_t exchange_id = 0;
  MessageTiming request;
  std::optional<MessageTiming> response;
  Outcome outcome = Outcome::kComplete;
  std::unique_ptr<ExchangeDetails> details;  // never null
};

// What a parser reports to (the connection tracker adds the connection).
class ExchangeSink {
 public:
  virtual ~ExchangeSink() = default;
  // Once per request, in the order requests start. Every request announced
  // gets exactly one OnExchange, unless dropped past max_pending_requests
  // (counted in ParserStats::pending_overflow).
  virtual void OnRequestStart(const RequestStart& request) = 0;
  virtual void OnExchange(Exchange exchange) = 0;
};

struct ParserLimits {
  size_t max_buffered_bytes = 64 * 1024;  // per direction, message being assembled
  size_t max_pending_requests = 64;       // requests awaiting responses
};

// Counters every parser keeps; summed over connections by the tracker.
struct ParserStats {
  uint64_t records = 0;           // exchanges reported
  uint64_t orphan_responses = 0;  // response with no request to pair (dropped)
  uint64_t invalid_bytes = 0;     // bytes skipped as not this protocol
  uint64_t resyncs = 0;           // times framing was lost and found again
  uint64_t pending_overflow = 0;  // requests dropped past max_pending_requests
  uint64_t degraded = 0;          // protocol-specific: state joined midway
                                  // (e.g. HPACK dynamic table unknown)
  ParserStats& operator+=(const ParserStats& o) {
    records += o.records;
    orphan_responses += o.orphan_responses;
    invalid_bytes += o.invalid_bytes;
    resyncs += o.resyncs;
    pending_overflow += o.pending_overflow;
    degraded += o.degraded;
    return *this;
  }
};

// Turns the two byte streams of one connection into exchanges.
class ProtocolParser {
 public:
  virtual ~ProtocolParser() = default;
  // One syscall's worth of bytes: `captured` holds the first bytes it moved,
  // total_bytes >= captured.size() how many it moved (the rest is a gap).
  virtual void OnData(Direction dir, std::string_view captured, uint64_t total_bytes,
                      uint64_t ts_enter, uint64_t ts_exit, uint32_t tid) = 0;
  // The connection is gone: every pending request gets its OnExchange.
  virtual void OnClose(uint64_t ts) = 0;
  virtual Role role() const = 0;
  virtual size_t pending_requests() const = 0;
  virtual const ParserStats& stats() const = 0;
};

struct Protocol {
  std::string_view name;  // "http1", "postgresql", "redis", "http2"
  ht_protocol kernel_tag;  // what the kernel reports for it (bpf/socket_trace.h)
  // True when these first bytes of a connection (either direction) start
  // this protocol: used when the kernel's open event was lost.
  bool (*looks_like_start)(std::string_view first_bytes);
  std::unique_ptr<ProtocolParser> (*new_parser)(Role role, ExchangeSink* sink,
                                                const ParserLimits& limits);
};

// The registered protocols (protocols/registry.cc), in recognition order.
std::span<const Protocol* const> Protocols();
// The protocol of a kernel tag; nullptr if none is registered.
const Protocol* ProtocolForTag(ht_protocol tag);
// The first registered protocol whose recogniser accepts these bytes.
const Protocol* RecogniseProtocol(std::string_view first_bytes);

}  // namespace hoptrace
