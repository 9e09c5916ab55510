// HTTP/1.x on the protocol interface: the stitcher (stitcher.h) as a
// ProtocolParser, and the protocol's half of a span per the OpenTelemetry
// HTTP semantic conventions (semconv v1.26 http, url, server, client,
// network, user_agent).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "agent/protocols/http1/types.h"
#include "agent/protocols/protocol.h"

namespace hoptrace::http1 {

// HTTP/1.x alone: a connection switched to another protocol (101) is no
// longer followed. The registry's HTTP/1 adds the protocols it may switch to.
extern const Protocol kProtocol;

// A request head or a response head starts these bytes.
bool LooksLikeHttp1Start(std::string_view bytes);

// A protocol an HTTP/1.1 connection may switch to (RFC 9110 7.8: the
// request's "Upgrade" names it, the server answers "101 Switching
// Protocols" with "Upgrade: <token>"), and how its parser takes over.
// adopt() gets the request that asked (announced already by the HTTP/1
// parser) and returns the parser of the rest of the connection, or nullptr
// to stop following it. That parser numbers its exchanges from 1: exchange 1
// is the upgraded request, which it reports but does not announce again.
struct UpgradeTarget {
  std::string_view token;  // as in the Upgrade field, e.g. "h2c"
  std::unique_ptr<ProtocolParser> (*adopt)(const Record& upgraded, Role role, ExchangeSink* sink,
                                           const ParserLimits& limits);
};

// HTTP/1.x that follows the connection into `upgrades` (kept by reference).
std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits,
                                          std::span<const UpgradeTarget> upgrades);

class HttpExchangeDetails final : public ExchangeDetails {
 public:
  explicit HttpExchangeDetails(Record&& record) : record_(std::move(record)) {}
  const Record& record() const { return record_; }

  std::string SpanName() const override;
  void AddAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                     Span* span) const override;
  void SetStatus(bool server, Span* span) const override;
  std::optional<std::string_view> Traceparent() const override;
  std::optional<std::string_view> Tracestate() const override;

 private:
  Record record_;
};

// The exchange an HTTP/1 record makes (timings, outcome, details).
Exchange ToExchange(Record&& record);

// Returns the query with every value replaced by "REDACTED" ("a=1&b" ->
// "a=REDACTED&b"): keys are kept so the shape of a call stays visible.
std::string RedactQuery(std::string_view query);

// Span name per semconv: "{method}" (we know no route), "HTTP" for methods
// outside the well-known set.
std::string SpanNameFor(std::string_view method);

}  // namespace hoptrace::http1
