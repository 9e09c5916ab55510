#include "agent/protocols/http1/protocol.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <deque>

#include "agent/protocols/http1/parse.h"
#include "agent/protocols/http1/stitcher.h"
#include "agent/text_util.h"
#include "agent/trace/span.h"
#include "agent/trace/span_builder.h"

namespace hoptrace::http1 {
namespace {

// semconv http.request.method: "known" methods are RFC 9110's plus PATCH.
constexpr std::array<std::string_view, 9> kKnownMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};

bool IsKnownMethod(std::string_view m) {
  return std::find(kKnownMethods.begin(), kKnownMethods.end(), m) != kKnownMethods.end();
}

struct HostPort {
  std::string_view host;  // a view of the Host value
  std::optional<int64_t> port;
};

// Host = uri-host [ ":" port ] (RFC 9110 7.2); uri-host may be "[v6]".
HostPort ParseHost(std::string_view host) {
  HostPort out;
  size_t colon = std::string_view::npos;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return {host, {}};
    out.host = host.substr(1, close - 1);
    if (close + 1 < host.size() && host[close + 1] == ':') colon = close + 1;
  } else {
    colon = host.rfind(':');
    out.host = host.substr(0, colon);
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

namespace {

MessageTiming TimingOf(const Message& m) {
  return MessageTiming{m.first_byte_ts_enter, m.first_byte_ts_exit, m.last_byte_ts_enter,
                       m.last_byte_ts_exit, m.tid};
}

Exchange::Outcome OutcomeOf(Record::Outcome outcome) {
  switch (outcome) {
    case Record::Outcome::kComplete: return Exchange::Outcome::kComplete;
    case Record::Outcome::kResponseIncomplete: return Exchange::Outcome::kResponseIncomplete;
    case Record::Outcome::kNoResponse: return Exchange::Outcome::kNoResponse;
  }
  return Exchange::Outcome::kComplete;
}

}  // namespace

Exchange ToExchange(Record&& record) {
  Exchange e;
  e.exchange_id = record.request.seq;
  e.request = TimingOf(record.request);
  if (record.response) e.response = TimingOf(*record.response);
  e.outcome = OutcomeOf(record.outcome);
  e.details = std::make_unique<HttpExchangeDetails>(std::move(record));
  return e;
}

std::string HttpExchangeDetails::SpanName() const { return SpanNameFor(record_.request.method); }

std::optional<std::string_view> HttpExchangeDetails::Traceparent() const {
  return record_.request.Header("traceparent");
}

std::optional<std::string_view> HttpExchangeDetails::Tracestate() const {
  return record_.request.Header("tracestate");
}

void HttpExchangeDetails::AddAttributes(const ConnInfo& conn, bool server,
                                        const SpanBuildOptions& options, Span* span) const {
  const Message& req = record_.request;
  const Message* resp = record_.response ? &*record_.response : nullptr;

  // Target split into path and query (RFC 9112 3.2: origin-form is
  // absolute-path [ "?" query ]; absolute-form is used towards proxies).
  std::string_view target = req.target;
  std::string_view path = target, query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  std::string shown_query;
  if (!query.empty()) shown_query = options.redact_query ? RedactQuery(query) : std::string(query);

  auto& a = span->attributes;
  if (IsKnownMethod(req.method)) {
    AddAttribute(a, "http.request.method", req.method);
  } else {
    AddAttribute(a, "http.request.method", "_OTHER");
    AddAttribute(a, "http.request.method_original", req.method);
  }
  auto host_header = req.Header("host");
  HostPort host = host_header ? ParseHost(*host_header) : HostPort{};
  const std::string& local = conn.LocalAddress();
  const std::string& remote = conn.RemoteAddress();

  const std::string_view scheme = conn.tls ? "https" : "http";
  if (server) {
    AddAttribute(a, "url.scheme", scheme);
    AddAttribute(a, "url.path", path);
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
    std::string full = std::string(scheme) + "://" + authority + std::string(path);
    if (!query.empty()) full += "?" + shown_query;
    if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
      full = options.redact_query && !query.empty()
                 ? std::string(target.substr(0, target.find('?') + 1)) + shown_query
                 : std::string(target);
    }
    AddAttribute(a, "url.full", full);
    AddAttribute(a, "server.address", host.host.empty() ? remote : std::string(host.host));
    if (host.port) {
      AddAttribute(a, "server.port", *host.port);
    } else if (conn.tuple_known) {
      AddAttribute(a, "server.port", int64_t{conn.remote_port});
    }
  }
  AddAttribute(a, "network.protocol.name", "http");
  AddAttribute(a, "network.protocol.version", ProtocolVersion(req));
  if (auto ua = req.Header("user-agent")) AddAttribute(a, "user_agent.original", *ua);
  if (req.content_length >= 0) AddAttribute(a, "http.request.body.size", req.content_length);
  if (resp) {
    AddAttribute(a, "http.response.status_code", int64_t{resp->status_code});
    if (resp->content_length >= 0) AddAttribute(a, "http.response.body.size", resp->content_length);
  }
  if (req.head_truncated || (resp && resp->head_truncated)) {
    AddAttribute(a, "hoptrace.http.head_truncated", true);
  }
}

// Status (semconv http spans): server spans are errors for 5xx only, client
// spans for 4xx and 5xx.
void HttpExchangeDetails::SetStatus(bool server, Span* span) const {
  if (!record_.response) return;
  const int code = record_.response->status_code;
  if (code >= 500 || (!server && code >= 400)) {
    span->status = StatusCode::kError;
    AddAttribute(span->attributes, "error.type", std::to_string(code));
  }
}

// A request or a response head: either side may speak first in what the
// kernel shows (a connection followed from its middle).
bool LooksLikeHttp1Start(std::string_view bytes) {
  return LooksLikeStart(MessageType::kRequest, bytes) ||
         LooksLikeStart(MessageType::kResponse, bytes);
}

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Upgrade = #protocol (RFC 9110 7.8): does the list name `token`?
bool ListNames(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    if (IEquals(Trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// The stitcher as a ProtocolParser: its requests and records become
// RequestStarts and Exchanges, numbered by the stitcher's request order.
// After a 101 to one of `upgrades`, the rest of the connection goes to that
// protocol's parser. Its exchange 1 is the upgraded request (its HTTP/1
// id); its exchange n > 1 becomes n - 1 + the last HTTP/1 id, above every
// id announced before. HTTP/1 requests still awaiting a response then (sent
// after the upgrade request, which a client must not do) never get one.
class Parser final : public ProtocolParser, Listener {
 public:
  Parser(Role role, ExchangeSink* sink, const ParserLimits& limits,
         std::span<const UpgradeTarget> upgrades)
      : sink_(sink),
        limits_(limits),
        upgrades_(upgrades),
        renumber_(this),
        stitcher_(role, this, StitcherLimits{limits.max_buffered_bytes,
                                             limits.max_pending_requests}) {}

  void OnData(Direction dir, std::string_view captured, uint64_t total_bytes, uint64_t ts_enter,
              uint64_t ts_exit, uint32_t tid) override {
    if (next_) {
      next_->OnData(dir, captured, total_bytes, ts_enter, ts_exit, tid);
      return;
    }
    const size_t used = stitcher_.OnData(dir, captured, total_bytes, ts_enter, ts_exit, tid);
    if (!next_) return;
    stitcher_.OnClose(ts_exit);  // requests left behind end here, unanswered
    // The 101 ended inside this syscall: what follows it is the new protocol's.
    if (used < captured.size() || total_bytes > captured.size()) {
      next_->OnData(dir, captured.substr(used), total_bytes - used, ts_enter, ts_exit, tid);
    }
  }
  void OnClose(uint64_t ts) override {
    stitcher_.OnClose(ts);
    if (next_) next_->OnClose(ts);
  }
  Role role() const override { return next_ ? next_->role() : stitcher_.role(); }
  size_t pending_requests() const override {
    return stitcher_.pending_requests() + (next_ ? next_->pending_requests() : 0);
  }
  const ParserStats& stats() const override {
    const StitcherStats& s = stitcher_.stats();
    stats_ = ParserStats{};
    stats_.records = s.records;
    stats_.orphan_responses = s.orphan_responses;
    stats_.invalid_bytes = s.invalid_bytes;
    stats_.resyncs = s.resyncs;
    stats_.pending_overflow = s.pending_overflow;
    if (next_) stats_ += next_->stats();
    return stats_;
  }

 private:
  // The new protocol's exchanges, renumbered after HTTP/1's.
  class Renumber final : public ExchangeSink {
   public:
    explicit Renumber(Parser* p) : p_(p) {}
    void OnRequestStart(const RequestStart& request) override {
      RequestStart r = request;
      r.exchange_id = Id(r.exchange_id);
      p_->sink_->OnRequestStart(r);
    }
    void OnExchange(Exchange exchange) override {
      exchange.exchange_id = Id(exchange.exchange_id);
      p_->sink_->OnExchange(std::move(exchange));
    }
    uint64_t Id(uint64_t n) const { return n == 1 ? p_->upgraded_id_ : n - 1 + p_->last_id_; }

   private:
    Parser* p_;
  };

  void OnRequestHead(const Message& request) override {
    last_id_ = request.seq;
    RequestStart start;
    start.exchange_id = request.seq;
    start.timing = MessageTiming{request.first_byte_ts_enter, request.first_byte_ts_exit,
                                 request.last_byte_ts_enter, request.last_byte_ts_exit,
                                 request.tid};
    start.traceparent = request.Header("traceparent");
    start.tracestate = request.Header("tracestate");
    sink_->OnRequestStart(start);
  }
  void OnRecord(Record record) override { sink_->OnExchange(ToExchange(std::move(record))); }

  bool TakeUpgrade(const Record& record) override {
    const auto offered = record.request.Header("upgrade");
    const auto chosen = record.response ? record.response->Header("upgrade") : std::nullopt;
    if (!offered || !chosen || stitcher_.role() == Role::kUnknown) return false;
    for (const UpgradeTarget& t : upgrades_) {
      if (!IEquals(Trim(*chosen), t.token) || !ListNames(*offered, t.token)) continue;
      upgraded_id_ = record.request.seq;
      next_ = t.adopt(record, stitcher_.role(), &renumber_, limits_);
      return next_ != nullptr;
    }
    return false;
  }

  ExchangeSink* sink_;
  ParserLimits limits_;
  std::span<const UpgradeTarget> upgrades_;
  Renumber renumber_;
  Stitcher stitcher_;
  std::unique_ptr<ProtocolParser> next_;  // after a 101 to one of upgrades_
  uint64_t last_id_ = 0;      // of the last HTTP/1 request announced
  uint64_t upgraded_id_ = 0;  // of the request the 101 answered
  mutable ParserStats stats_;
};

std::unique_ptr<ProtocolParser> NewPlainParser(Role role, ExchangeSink* sink,
                                               const ParserLimits& limits) {
  return std::make_unique<Parser>(role, sink, limits, std::span<const UpgradeTarget>());
}

}  // namespace

std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits,
                                          std::span<const UpgradeTarget> upgrades) {
  return std::make_unique<Parser>(role, sink, limits, upgrades);
}

const Protocol kProtocol{"http1", HT_PROTO_HTTP1, LooksLikeHttp1Start, NewPlainParser};

}  // namespace hoptrace::http1
