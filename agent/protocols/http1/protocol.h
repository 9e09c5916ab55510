// HTTP/1.x on the protocol interface: the stitcher (stitcher.h) as a
// ProtocolParser, and the protocol's half of a span per the OpenTelemetry
// HTTP semantic conventions (semconv v1.26 http, url, server, client,
// network, user_agent).
#pragma once

#include <string>
#include <string_view>

#include "agent/protocols/http1/types.h"
#include "agent/protocols/protocol.h"

namespace hoptrace::http1 {

extern const Protocol kProtocol;

class HttpExchangeDetails final : public ExchangeDetails {
 public:
  explicit HttpExchangeDetails(Record record) : record_(std::move(record)) {}
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
