#include "agent/hops/hop_joiner.h"

#include <gtest/gtest.h>

#include "event_generator.h"
#include "hop_test_spans.h"
#include "tcp_event_generator.h"

namespace hoptrace {
namespace {

using testing::HttpSpan;
using testing::Sid;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = 1'700'000'000'000'000'000;  // unix ns of the client span's start
constexpr int64_t kMonoToUnix = static_cast<int64_t>(kT0) - 5'000'000'000;  // mono 5 s = kT0

std::optional<int64_t> IntAttr(const Span& s, std::string_view key) {
  const AttrValue* v = FindAttribute(s.attributes, key);
  if (v == nullptr) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(v)) return *i;
  return std::nullopt;
}

// frontend (client, span 2) -> backend (server, span 3, parent 2).
Span Client() {
  return HttpSpan(SpanKind::kClient, "frontend", 2, 1, kT0, kT0 + 60 * kMs, "10.0.2.1", 50000,
                  "10.0.2.2", 9090);
}
Span Server() {
  return HttpSpan(SpanKind::kServer, "backend", 3, 2, kT0 + 21 * kMs, kT0 + 58 * kMs, "10.0.2.2",
                  9090, "10.0.2.1", 50000);
}

class HopJoinerTest : public ::testing::Test {
 protected:
  HopJoiner Make(NetworkFacts* facts = nullptr, HopJoinerOptions o = {}) {
    return HopJoiner(
        facts, &table_, [this](Span s) { out_.push_back(std::move(s)); }, kMonoToUnix, o);
  }
  HopTable table_;
  std::vector<Span> out_;
  uint64_t now_ = 5'000'000'000;
};

TEST_F(HopJoinerTest, ClientAfterItsServerGetsServerAndNetworkTimes) {
  HopJoiner j = Make();
  j.OnSpan(Server(), now_);
  ASSERT_EQ(out_.size(), 1u);  // SERVER spans are never held
  j.OnSpan(Client(), now_);
  ASSERT_EQ(out_.size(), 2u);
  const Span& c = out_[1];
  EXPECT_EQ(c.kind, SpanKind::kClient);
  EXPECT_EQ(IntAttr(c, "hoptrace.server.time_ns"), int64_t{37 * kMs});
  EXPECT_EQ(IntAttr(c, "hoptrace.network.time_ns"), int64_t{23 * kMs});
  EXPECT_EQ(IntAttr(c, "hoptrace.network.request_ns"), int64_t{21 * kMs});
  EXPECT_EQ(IntAttr(c, "hoptrace.network.response_ns"), int64_t{2 * kMs});
  // Without network probes nothing is said about retransmissions.
  EXPECT_EQ(IntAttr(c, "hoptrace.network.retransmits"), std::nullopt);
  EXPECT_EQ(j.stats().joined, 1u);
  EXPECT_EQ(j.held(), 0u);
  auto edges = table_.Edges(now_);
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges[0].caller, "frontend");
  EXPECT_EQ(edges[0].callee, "backend");
  EXPECT_EQ(edges[0].network.p50, 23 * kMs);
}

TEST_F(HopJoinerTest, ClientBeforeItsServerWaitsForIt) {
  HopJoiner j = Make();
  j.OnSpan(Client(), now_);
  EXPECT_TRUE(out_.empty());
  EXPECT_EQ(j.held(), 1u);
  j.OnSpan(Server(), now_ + 1000);
  ASSERT_EQ(out_.size(), 2u);
  EXPECT_EQ(out_[0].kind, SpanKind::kServer);
  EXPECT_EQ(IntAttr(out_[1], "hoptrace.network.time_ns"), int64_t{23 * kMs});
  // The trace store has both, and the hops of the trace say the same.
  auto hops = table_.HopsOf(testing::Tid(1).Hex());
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_EQ(hops[0].network_ns, int64_t{23 * kMs});
  EXPECT_EQ(hops[0].request_ns, int64_t{21 * kMs});
}

TEST_F(HopJoinerTest, ClientWithoutTracedServerLeavesAfterTheHoldUnchanged) {
  HopJoiner j = Make();
  Span c = Client();
  const size_t attrs = c.attributes.size();
  j.OnSpan(std::move(c), now_);
  j.Tick(now_ + HopJoinerOptions{}.hold_ns - 1);
  EXPECT_TRUE(out_.empty());
  j.Tick(now_ + HopJoinerOptions{}.hold_ns);
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].attributes.size(), attrs);
  EXPECT_EQ(j.stats().clients_unpaired, 1u);
  auto edges = table_.Edges(now_ + kMs);
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges[0].callee, "10.0.2.2:9090");
  EXPECT_EQ(edges[0].server.count, 0u);
}

TEST_F(HopJoinerTest, ServersOfUntracedCallersBecomeEntryHops) {
  HopJoiner j = Make();
  Span root = Server();
  root.parent_span_id = SpanId{};
  j.OnSpan(root, now_);
  EXPECT_EQ(j.stats().entry_hops, 1u);  // no parent: at once
  Span remote = Server();
  remote.span_id = Sid(7);
  remote.parent_span_id = Sid(77);  // a traceparent from outside
  j.OnSpan(remote, now_);
  EXPECT_EQ(j.stats().entry_hops, 1u);
  j.Tick(now_ + HopJoinerOptions{}.server_wait_ns);
  EXPECT_EQ(j.stats().entry_hops, 2u);
  EXPECT_EQ(out_.size(), 2u);
  auto edges = table_.Edges(now_ + kMs);
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges[0].caller, "10.0.2.1");
  EXPECT_EQ(edges[0].callee, "backend");
  EXPECT_EQ(edges[0].requests, 2u);
}

TEST_F(HopJoinerTest, CalleesRetransmissionsDuringTheCallJoinTheCallersSpan) {
  NetworkFacts facts;
  testing::FakeClock clock;
  testing::ConnGenerator srv_conn(&clock, 300, 4, HT_ROLE_SERVER, "10.0.2.2", 9090, "10.0.2.1",
                                  50000);
  // Mono times: the client span runs 5.000 s .. 5.060 s, the server's 5.021 .. 5.058.
  clock.Advance(5'000'000'000 - clock.now() +
                59 * kMs);  // after the server's span, inside the client's
  auto rec = testing::TcpRecord(clock, srv_conn, HT_EV_TCP_RETRANSMIT, {.flags = HT_TCP_F_TIMEOUT});
  const auto* ev = reinterpret_cast<const ht_tcp_event*>(rec.data());
  facts.OnTcpEvent(TcpEvent{&ev->hdr, ev});
  facts.NoteSpanConnection(Sid(3), ConnId{300, 4, ev->hdr.conn_gen});

  HopJoiner j = Make(&facts);
  Span server = Server();
  server.attributes.push_back({"hoptrace.tcp.retransmits", int64_t{0}});
  Span client = Client();
  client.attributes.push_back({"hoptrace.tcp.retransmits", int64_t{1}});
  j.OnSpan(server, now_);
  j.OnSpan(client, now_);
  ASSERT_EQ(out_.size(), 2u);
  const Span& c = out_[1];
  EXPECT_EQ(IntAttr(c, "hoptrace.network.retransmits"), 2);  // its own one and the callee's
  ASSERT_EQ(c.events.size(), 1u);
  EXPECT_EQ(c.events[0].name, "hoptrace.tcp.retransmit");
  EXPECT_EQ(c.events[0].time_unix_nano, kT0 + 59 * kMs);
  const AttrValue* endpoint = FindAttribute(c.events[0].attributes, "hoptrace.tcp.endpoint");
  ASSERT_NE(endpoint, nullptr);
  EXPECT_EQ(std::get<std::string>(*endpoint), "server");
}

TEST_F(HopJoinerTest, BoundedAndFlushedAtShutdown) {
  HopJoinerOptions o;
  o.max_held = 2;
  HopJoiner j = Make(nullptr, o);
  for (uint8_t id = 10; id < 13; ++id) {
    Span c = Client();
    c.span_id = Sid(id);
    j.OnSpan(std::move(c), now_ + id);
  }
  EXPECT_EQ(out_.size(), 1u);  // the oldest had to go
  EXPECT_EQ(out_[0].span_id, Sid(10));
  EXPECT_EQ(j.stats().overflow, 1u);
  j.Flush(now_ + 100);
  EXPECT_EQ(out_.size(), 3u);
  EXPECT_EQ(j.held(), 0u);
}

}  // namespace
}  // namespace hoptrace
