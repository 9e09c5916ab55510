// The protocol interface (agent/protocols/protocol.h) seen from both ends:
// the connection tracker choosing a parser, and the trace stage turning
// exchanges of a protocol it has never heard of into spans — multiplexed,
// ending out of order — with no protocol-specific code of its own.
#include <gtest/gtest.h>

#include "agent/connections/conn_tracker.h"
#include "agent/kernel/event_reader.h"
#include "agent/process/process_registry.h"
#include "agent/protocols/http1/protocol.h"
#include "agent/trace/span_builder.h"
#include "agent/trace/trace_stitcher.h"
#include "event_generator.h"

namespace hoptrace {
namespace {

using testing::ConnGenerator;
using testing::FakeClock;

constexpr uint64_t kMs = 1'000'000;

std::string Attr(const Span& s, std::string_view key) {
  const AttrValue* v = FindAttribute(s.attributes, key);
  if (!v) return "<none>";
  if (auto* str = std::get_if<std::string>(v)) return *str;
  if (auto* i = std::get_if<int64_t>(v)) return std::to_string(*i);
  return "<other>";
}

// A protocol the trace stage knows nothing about: one "call" per exchange.
class CallDetails final : public ExchangeDetails {
 public:
  CallDetails(std::string method, int status, std::optional<std::string> traceparent)
      : method_(std::move(method)), status_(status), traceparent_(std::move(traceparent)) {}
  std::string SpanName() const override { return "call " + method_; }
  void AddAttributes(const ConnInfo&, bool, const SpanBuildOptions&, Span* span) const override {
    AddAttribute(span->attributes, "rpc.method", method_);
  }
  void SetStatus(bool, Span* span) const override {
    if (status_ != 0) {
      span->status = StatusCode::kError;
      AddAttribute(span->attributes, "error.type", std::to_string(status_));
    }
  }
  std::optional<std::string_view> Traceparent() const override { return traceparent_; }

 private:
  std::string method_;
  int status_;
  std::optional<std::string> traceparent_;
};

ConnInfo ServerConn() {
  ConnInfo c;
  c.id = ConnId{200, 7, 1};
  c.kernel_role = HT_ROLE_SERVER;
  c.followed_from_open = true;
  return c;
}

MessageTiming At(uint64_t first, uint64_t last, uint32_t tid) {
  return MessageTiming{first, first + 1000, last, last + 1000, tid};
}

class TraceStageTest : public ::testing::Test {
 protected:
  TraceStageTest()
      : processes_("testhost", "/nonexistent-proc"),
        stitcher_(&processes_, [this](Span s) { spans_.push_back(std::move(s)); },
                  TraceStitcherOptions{}, IdGenerator(7)) {}

  void Start(const ConnInfo& conn, uint64_t id, uint64_t ts, const std::string* tp) {
    RequestStart r;
    r.exchange_id = id;
    r.timing = At(ts, ts, 200);
    if (tp) r.traceparent = *tp;
    stitcher_.OnRequestStart(conn, Role::kServer, r);
  }
  void End(const ConnInfo& conn, uint64_t id, uint64_t req_ts, uint64_t resp_ts,
           std::string method, int status, std::optional<std::string> tp,
           Exchange::Outcome outcome = Exchange::Outcome::kComplete) {
    Exchange e;
    e.exchange_id = id;
    e.request = At(req_ts, req_ts, 200);
    if (outcome != Exchange::Outcome::kNoResponse) e.response = At(resp_ts, resp_ts, 200);
    e.outcome = outcome;
    e.details = std::make_unique<CallDetails>(std::move(method), status, std::move(tp));
    stitcher_.OnExchange(conn, Role::kServer, std::move(e), std::nullopt);
  }

  ProcessRegistry processes_;
  std::vector<Span> spans_;
  TraceStitcher stitcher_;
};

TEST_F(TraceStageTest, MultiplexedExchangesEndingOutOfOrderKeepTheirOwnContexts) {
  const ConnInfo conn = ServerConn();
  const std::string tp1 = "00-11111111111111111111111111111111-1111111111111111-01";
  const std::string tp3 = "00-33333333333333333333333333333333-3333333333333333-01";
  Start(conn, 1, 10 * kMs, &tp1);
  Start(conn, 3, 11 * kMs, &tp3);
  // Stream 3 answers first, stream 1 later and with an error.
  End(conn, 3, 11 * kMs, 15 * kMs, "B", 0, tp3);
  End(conn, 1, 10 * kMs, 30 * kMs, "A", 13, tp1);

  ASSERT_EQ(spans_.size(), 2u);
  const Span& b = spans_[0];
  const Span& a = spans_[1];
  EXPECT_EQ(b.name, "call B");
  EXPECT_EQ(b.trace_id.Hex(), "33333333333333333333333333333333");
  EXPECT_EQ(b.parent_span_id.Hex(), "3333333333333333");
  EXPECT_EQ(b.status, StatusCode::kUnset);
  EXPECT_EQ(Attr(b, "rpc.method"), "B");
  EXPECT_EQ(Attr(b, "network.transport"), "tcp");
  EXPECT_EQ(a.name, "call A");
  EXPECT_EQ(a.trace_id.Hex(), "11111111111111111111111111111111");
  EXPECT_EQ(a.parent_span_id.Hex(), "1111111111111111");
  EXPECT_EQ(a.status, StatusCode::kError);
  EXPECT_EQ(Attr(a, "error.type"), "13");
  EXPECT_EQ(a.kind, SpanKind::kServer);
  // Server spans start when the request's read returned, end when the last
  // response byte was written.
  EXPECT_EQ(a.end_unix_nano - a.start_unix_nano, 30 * kMs + 1000 - (10 * kMs + 1000));
  EXPECT_EQ(stitcher_.stats().spans, 2u);
}

TEST_F(TraceStageTest, AnExchangeWithoutResponseIsAnErrorWhateverTheProtocolSays) {
  const ConnInfo conn = ServerConn();
  Start(conn, 5, 10 * kMs, nullptr);
  End(conn, 5, 10 * kMs, 0, "C", /*status=*/0, std::nullopt, Exchange::Outcome::kNoResponse);
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(spans_[0].status, StatusCode::kError);
  EXPECT_EQ(Attr(spans_[0], "error.type"), "no_response");
  EXPECT_EQ(Attr(spans_[0], "rpc.method"), "C");
}

class TrackerTest : public ::testing::Test, public EventHandler, public ExchangeHandler {
 protected:
  TrackerTest() : tracker_(this), reader_(this) {}

  void Feed(const std::vector<uint8_t>& rec) { reader_.Dispatch(rec); }

  void OnConnOpen(const ConnEvent& ev) override { tracker_.OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_.OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_.OnConnClose(ev); }
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent&) override {}
  void OnProcIdentity(const ProcIdentityEvent&) override {}

  void OnRequestStart(const ConnInfo& conn, Role, const RequestStart& r) override {
    starts_.push_back(r.exchange_id);
    protocols_.push_back(conn.protocol);
  }
  void OnExchange(const ConnInfo&, Role role, Exchange e, const std::optional<Closing>&) override {
    roles_.push_back(role);
    names_.push_back(e.details->SpanName());
  }
  void OnConnectionGone(const ConnInfo&) override { ++gone_; }

  FakeClock clock_;
  ConnTracker tracker_;
  EventReader reader_;
  std::vector<uint64_t> starts_;
  std::vector<ht_protocol> protocols_;
  std::vector<Role> roles_;
  std::vector<std::string> names_;
  int gone_ = 0;
};

TEST_F(TrackerTest, KernelTagPicksTheParser) {
  ConnGenerator c(&clock_, 10, 3, HT_ROLE_CLIENT, "10.0.0.1", 40000, "10.0.0.2", 80);
  c.set_protocol(HT_PROTO_HTTP1);
  Feed(c.Open());
  Feed(c.Data(HT_DIR_EGRESS, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"));
  Feed(c.Data(HT_DIR_INGRESS, "HTTP/1.1 204 No Content\r\n\r\n"));
  Feed(c.Close());
  EXPECT_EQ(starts_, (std::vector<uint64_t>{1}));
  EXPECT_EQ(protocols_, (std::vector<ht_protocol>{HT_PROTO_HTTP1}));
  EXPECT_EQ(names_, (std::vector<std::string>{"POST"}));
  EXPECT_EQ(roles_, (std::vector<Role>{Role::kClient}));
  EXPECT_EQ(tracker_.parser_stats().records, 1u);
  EXPECT_EQ(gone_, 1);
}

TEST_F(TrackerTest, LostOpenEventWaitsForBytesARegisteredProtocolRecognises) {
  ConnGenerator c(&clock_, 10, 4, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 40001);
  // No open event: the first bytes are the middle of a body.
  Feed(c.Data(HT_DIR_INGRESS, "tail of a body nobody framed"));
  EXPECT_EQ(tracker_.stats().unrecognised_bytes, 28u);
  EXPECT_TRUE(starts_.empty());
  Feed(c.Data(HT_DIR_INGRESS, "GET /y HTTP/1.1\r\nHost: b\r\n\r\n"));
  Feed(c.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(protocols_, (std::vector<ht_protocol>{HT_PROTO_HTTP1}));
  EXPECT_EQ(names_, (std::vector<std::string>{"GET"}));
  EXPECT_EQ(roles_, (std::vector<Role>{Role::kServer}));
}

TEST_F(TrackerTest, TagOfAnUnregisteredProtocolFallsBackToRecognition) {
  ConnGenerator c(&clock_, 10, 5, HT_ROLE_CLIENT, "10.0.0.1", 40002, "10.0.0.2", 80);
  c.set_protocol(static_cast<ht_protocol>(250));  // a newer kernel side than this agent
  Feed(c.Open());
  Feed(c.Data(HT_DIR_EGRESS, "\x01\x02 binary"));
  EXPECT_TRUE(starts_.empty());
  EXPECT_EQ(tracker_.stats().unrecognised_bytes, 9u);
  Feed(c.Close());
  EXPECT_EQ(gone_, 1);
  EXPECT_EQ(tracker_.tracked_connections(), 0u);
}

TEST(ProtocolRegistry, EveryProtocolIsFoundByItsTagAndRecognisesItsOwnStart) {
  ASSERT_FALSE(Protocols().empty());
  for (const Protocol* p : Protocols()) {
    EXPECT_EQ(ProtocolForTag(p->kernel_tag), p) << p->name;
  }
  // The registry's HTTP/1 (http1::kProtocol plus the upgrade to h2c).
  ASSERT_NE(ProtocolForTag(HT_PROTO_HTTP1), nullptr);
  EXPECT_EQ(ProtocolForTag(HT_PROTO_HTTP1)->name, "http1");
  EXPECT_EQ(RecogniseProtocol("GET / HTTP/1.1\r\n"), ProtocolForTag(HT_PROTO_HTTP1));
  EXPECT_EQ(RecogniseProtocol("HTTP/1.1 200 OK\r\n"), ProtocolForTag(HT_PROTO_HTTP1));
  EXPECT_EQ(ProtocolForTag(HT_PROTO_OTHER), nullptr);
  EXPECT_EQ(ProtocolForTag(HT_PROTO_UNKNOWN), nullptr);
}

}  // namespace
}  // namespace hoptrace
