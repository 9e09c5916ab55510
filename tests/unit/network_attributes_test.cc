// Network facts on spans without a kernel: net_probe records (built like
// bpf/net_probe.bpf.c's) and socket_trace records go through EventReader ->
// ConnTracker -> TraceStitcher -> BuildSpan, and the span's network
// attributes and events are checked value by value.
#include "agent/hops/network_attributes.h"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <map>
#include <random>

#include "agent/connections/conn_tracker.h"
#include "agent/kernel/event_reader.h"
#include "agent/process/process_registry.h"
#include "agent/trace/trace_stitcher.h"
#include "event_generator.h"
#include "tcp_event_generator.h"

namespace hoptrace {
namespace {

using testing::ConnGenerator;
using testing::FakeClock;
using testing::TcpFacts;
using testing::TcpRecord;

constexpr uint64_t kMs = 1'000'000;

std::optional<int64_t> IntAttr(const Span& s, std::string_view key) {
  const AttrValue* v = FindAttribute(s.attributes, key);
  if (v == nullptr) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(v)) return *i;
  return std::nullopt;
}

std::string StrAttr(const Attributes& a, std::string_view key) {
  const AttrValue* v = FindAttribute(a, key);
  if (v == nullptr) return "<none>";
  if (const auto* s = std::get_if<std::string>(v)) return *s;
  if (const auto* b = std::get_if<bool>(v)) return *b ? "true" : "false";
  return "<other>";
}

TEST(InferIpHops, NearestCommonInitialTtlMinusObserved) {
  EXPECT_EQ(InferIpHops(64), 0);
  EXPECT_EQ(InferIpHops(63), 1);
  EXPECT_EQ(InferIpHops(62), 2);
  EXPECT_EQ(InferIpHops(1), 63);
  EXPECT_EQ(InferIpHops(65), 63);  // above 64: a 128 sender
  EXPECT_EQ(InferIpHops(128), 0);
  EXPECT_EQ(InferIpHops(120), 8);
  EXPECT_EQ(InferIpHops(255), 0);
  EXPECT_EQ(InferIpHops(250), 5);
  EXPECT_EQ(InferIpHops(0), std::nullopt);  // never observed
  EXPECT_EQ(LikelyInitialTtl(129), 255);
}

class NetworkPipelineTest : public ::testing::Test, public EventHandler {
 protected:
  NetworkPipelineTest()
      : processes_("testhost", "/nonexistent-proc"),
        stitcher_(
            &processes_, [this](Span s) { spans_.push_back(std::move(s)); }, Options(),
            IdGenerator(7)),
        tracker_(&stitcher_),
        reader_(this) {}

  TraceStitcherOptions Options() {
    TraceStitcherOptions o;
    o.span.network = &facts_;
    o.span.monotonic_to_unix_ns = 0;  // span times are the kernel's: easy to compare
    return o;
  }

  void Feed(const std::vector<uint8_t>& rec) { reader_.Dispatch(rec); }
  void OnConnOpen(const ConnEvent& ev) override { tracker_.OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_.OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_.OnConnClose(ev); }
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent&) override {}
  void OnTcpEvent(const TcpEvent& ev) override { facts_.OnTcpEvent(ev); }

  FakeClock clock_;
  NetworkFacts facts_;
  ProcessRegistry processes_;
  std::vector<Span> spans_;
  TraceStitcher stitcher_;
  ConnTracker tracker_;
  EventReader reader_;
};

TEST_F(NetworkPipelineTest, ClientSpanCarriesRttTtlAndIncidentsInsideItsWindow) {
  ConnGenerator cli(&clock_, 200, 7, HT_ROLE_CLIENT, "10.0.1.1", 50000, "10.0.2.2", 9090);
  Feed(cli.Open());
  // A retransmission before the call (the handshake's) is not the call's.
  Feed(TcpRecord(clock_, cli, HT_EV_TCP_RETRANSMIT, {.total_retrans = 1}));
  clock_.Advance(1 * kMs);
  Feed(cli.Data(HT_DIR_EGRESS, "GET /x HTTP/1.1\r\nHost: b\r\n\r\n"));
  const uint64_t call_start = clock_.now() - 1000;  // the write's entry
  clock_.Advance(200 * kMs);
  const uint64_t rto_at = clock_.now();
  Feed(TcpRecord(clock_, cli, HT_EV_TCP_RETRANSMIT,
                 {.total_retrans = 2, .total_rto = 1, .flags = HT_TCP_F_TIMEOUT}));
  clock_.Advance(5 * kMs);
  Feed(TcpRecord(clock_, cli, HT_EV_TCP_STATS,
                 {.srtt_us = 1800,
                  .rttvar_us = 900,
                  .min_rtt_us = 1500,
                  .total_retrans = 2,
                  .total_rto = 1,
                  .ttl = 62,
                  .reason = HT_TCP_SAMPLE_FIRST}));
  clock_.Advance(1 * kMs);
  Feed(cli.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  const uint64_t call_end = clock_.now();
  clock_.Advance(1 * kMs);
  Feed(TcpRecord(clock_, cli, HT_EV_TCP_RESET_RECEIVED));  // after the call: not its

  ASSERT_EQ(spans_.size(), 1u);
  const Span& s = spans_[0];
  EXPECT_EQ(s.start_unix_nano, call_start);
  EXPECT_EQ(s.end_unix_nano, call_end);
  EXPECT_EQ(StrAttr(s.attributes, "network.type"), "ipv4");
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.srtt_us"), 1800);
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.rttvar_us"), 900);
  EXPECT_EQ(IntAttr(s, "hoptrace.network.peer_ttl"), 62);
  EXPECT_EQ(IntAttr(s, "hoptrace.network.ip_hops"), 2);
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.retransmits"), 1);
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.timeouts"), 1);
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.resets"), std::nullopt);  // rare counts: only when not 0
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.connection.retransmits"), 2);
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.connection.timeouts"), 1);
  ASSERT_EQ(s.events.size(), 1u);
  EXPECT_EQ(s.events[0].name, "hoptrace.tcp.retransmit");
  EXPECT_EQ(s.events[0].time_unix_nano, rto_at);
  EXPECT_EQ(StrAttr(s.events[0].attributes, "hoptrace.tcp.timeout"), "true");
  EXPECT_EQ(StrAttr(s.events[0].attributes, "hoptrace.tcp.endpoint"), "client");
  EXPECT_EQ(StrAttr(s.events[0].attributes, "hoptrace.tcp.state"), "ESTABLISHED");
}

TEST_F(NetworkPipelineTest, ServerSpanEndedByResetShowsTheResetEvent) {
  ConnGenerator srv(&clock_, 300, 4, HT_ROLE_SERVER, "10.0.2.2", 9090, "10.0.1.1", 50000);
  Feed(srv.Open());
  Feed(TcpRecord(clock_, srv, HT_EV_TCP_STATS, {.ttl = 63, .reason = HT_TCP_SAMPLE_ACCEPT}));
  // A traced caller's context: only such a span is ever joined to its caller's.
  Feed(srv.Data(HT_DIR_INGRESS,
                "GET /slow HTTP/1.1\r\n"
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"));
  clock_.Advance(10 * kMs);
  Feed(TcpRecord(clock_, srv, HT_EV_TCP_RESET_RECEIVED, {.ttl = 63, .state = 1}));
  clock_.Advance(1000);
  Feed(srv.Close());

  ASSERT_EQ(spans_.size(), 1u);
  const Span& s = spans_[0];
  EXPECT_EQ(StrAttr(s.attributes, "error.type"), "no_response");
  EXPECT_EQ(IntAttr(s, "hoptrace.tcp.resets"), 1);
  EXPECT_EQ(IntAttr(s, "hoptrace.network.ip_hops"), 1);
  ASSERT_EQ(s.events.size(), 1u);
  EXPECT_EQ(s.events[0].name, "hoptrace.tcp.reset");
  EXPECT_EQ(StrAttr(s.events[0].attributes, "hoptrace.tcp.reset.direction"), "received");
  EXPECT_EQ(StrAttr(s.events[0].attributes, "hoptrace.tcp.endpoint"), "server");
  // The joiner finds this connection's incidents by the server span's id.
  ASSERT_TRUE(facts_.SpanConnection(s.span_id).has_value());
  EXPECT_EQ(facts_.SpanConnection(s.span_id)->fd, 4);
}

TEST_F(NetworkPipelineTest, RootServerSpanConnectionIsNotRemembered) {
  // No caller was traced, so none will ever ask for this span's connection.
  ConnGenerator srv(&clock_, 300, 4, HT_ROLE_SERVER, "10.0.2.2", 9090, "10.0.1.1", 50000);
  Feed(srv.Open());
  Feed(TcpRecord(clock_, srv, HT_EV_TCP_STATS, {.ttl = 63, .reason = HT_TCP_SAMPLE_ACCEPT}));
  Feed(srv.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n"));
  clock_.Advance(1 * kMs);
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));

  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_FALSE(spans_[0].parent_span_id.IsValid());
  EXPECT_EQ(IntAttr(spans_[0], "hoptrace.network.ip_hops"), 1);  // the facts are still used
  EXPECT_FALSE(facts_.SpanConnection(spans_[0].span_id).has_value());
}

TEST_F(NetworkPipelineTest, WithoutFactsTheSpanHasNoNetworkAttributes) {
  ConnGenerator cli(&clock_, 200, 7, HT_ROLE_CLIENT, "10.0.1.1", 50000, "10.0.2.2", 9090);
  Feed(cli.Open());
  Feed(cli.Data(HT_DIR_EGRESS, "GET / HTTP/1.1\r\n\r\n"));
  Feed(cli.Data(HT_DIR_INGRESS, "HTTP/1.1 204 No Content\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  for (const Attribute& a : spans_[0].attributes) {
    EXPECT_NE(a.key.view().rfind("hoptrace.tcp.", 0), 0u) << a.key;
    EXPECT_NE(a.key, "network.type");
  }
  EXPECT_TRUE(spans_[0].events.empty());
}

TEST_F(NetworkPipelineTest, Ipv6HopLimitGivesHopsAndNetworkType) {
  ConnGenerator cli(&clock_, 200, 9, HT_ROLE_CLIENT, "10.0.1.1", 50000, "10.0.2.2", 9090);
  Feed(cli.Open());
  Feed(TcpRecord(clock_, cli, HT_EV_TCP_STATS, {.ttl = 62, .family = AF_INET6}));
  Feed(cli.Data(HT_DIR_EGRESS, "GET / HTTP/1.1\r\n\r\n"));
  Feed(cli.Data(HT_DIR_INGRESS, "HTTP/1.1 204 No Content\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(StrAttr(spans_[0].attributes, "network.type"), "ipv6");
  EXPECT_EQ(IntAttr(spans_[0], "hoptrace.network.ip_hops"), 2);
}

// SERVER span -> connection: the newest max_connections spans, the oldest
// out first, the first connection of a span kept; checked against a plain
// model through growth, wrap-around and eviction.
TEST(NetworkFacts, RemembersTheNewestSpanConnections) {
  for (size_t cap : {size_t{1}, size_t{3}, size_t{64}, size_t{100}, size_t{1000}}) {
    NetworkFactsOptions o;
    o.max_connections = cap;
    NetworkFacts facts(o);
    std::map<uint64_t, int32_t> model;  // id -> fd
    std::deque<uint64_t> order;
    std::mt19937_64 rng(cap);
    auto id_of = [](uint64_t n) {
      SpanId id;
      const uint64_t v = (n + 1) << 20;  // low bits all alike
      memcpy(id.bytes.data(), &v, 8);
      return id;
    };
    for (int step = 0; step < 20000; ++step) {
      const uint64_t n = rng() % (3 * cap + 10);
      const int32_t fd = static_cast<int32_t>(rng() % 1000);
      facts.NoteSpanConnection(id_of(n), ConnId{1, fd, 7});
      if (order.size() >= cap) {
        model.erase(order.front());
        order.pop_front();
      }
      if (model.emplace(n, fd).second) order.push_back(n);
      const uint64_t probe = rng() % (3 * cap + 10);
      const auto got = facts.SpanConnection(id_of(probe));
      const auto want = model.find(probe);
      ASSERT_EQ(got.has_value(), want != model.end()) << "cap " << cap << " step " << step;
      if (got) {
        ASSERT_EQ(got->fd, want->second);
      }
    }
    for (const auto& [n, fd] : model) {
      ASSERT_TRUE(facts.SpanConnection(id_of(n)).has_value());
      EXPECT_EQ(facts.SpanConnection(id_of(n))->fd, fd);
    }
  }
}

TEST(NetworkFacts, BoundedInConnectionsAndIncidents) {
  FakeClock clock;
  NetworkFactsOptions o;
  o.max_connections = 2;
  o.max_incidents_per_connection = 3;
  NetworkFacts facts(o);
  std::vector<ConnGenerator> conns;
  for (int fd = 3; fd < 6; ++fd) {
    conns.emplace_back(&clock, 100, fd, HT_ROLE_CLIENT, "10.0.0.1", 40000 + fd, "10.0.0.2", 80);
  }
  auto feed = [&](const std::vector<uint8_t>& rec) {
    const auto* ev = reinterpret_cast<const ht_tcp_event*>(rec.data());
    facts.OnTcpEvent(TcpEvent{&ev->hdr, ev});
  };
  for (int i = 0; i < 5; ++i) {
    clock.Advance(kMs);
    feed(TcpRecord(clock, conns[0], HT_EV_TCP_RETRANSMIT));
  }
  ConnId first{100, 3, 0};
  first.gen = reinterpret_cast<const ht_conn_event*>(conns[0].Open().data())->hdr.conn_gen;
  ASSERT_NE(facts.Find(first), nullptr);
  EXPECT_EQ(facts.Find(first)->incidents.size(), 3u);
  EXPECT_EQ(facts.stats().incidents_dropped, 2u);
  clock.Advance(kMs);
  feed(TcpRecord(clock, conns[1], HT_EV_TCP_STATS));
  clock.Advance(kMs);
  feed(TcpRecord(clock, conns[2], HT_EV_TCP_STATS));  // the first is the oldest: it goes
  EXPECT_EQ(facts.connections(), 2u);
  EXPECT_EQ(facts.Find(first), nullptr);
  EXPECT_EQ(facts.stats().evicted, 1u);  // an eighth of 2, at least one
  // Idle connections are forgotten.
  facts.Tick(clock.now() + o.idle_ttl_ns + 1);
  EXPECT_EQ(facts.connections(), 0u);
}

class CountingHandler : public EventHandler {
 public:
  void OnConnOpen(const ConnEvent&) override {}
  void OnData(const DataEvent&) override {}
  void OnConnClose(const ConnEvent&) override {}
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent&) override {}
  void OnTcpEvent(const TcpEvent& ev) override { types.push_back(ev.hdr->type); }
  std::vector<uint32_t> types;
};

TEST(EventReaderTcp, DispatchesEveryTcpTypeAndRejectsShortRecords) {
  FakeClock clock;
  ConnGenerator c(&clock, 1, 3, HT_ROLE_CLIENT, "10.0.0.1", 1, "10.0.0.2", 2);
  CountingHandler h;
  EventReader reader(&h);
  for (uint32_t t :
       {HT_EV_TCP_STATS, HT_EV_TCP_RETRANSMIT, HT_EV_TCP_RESET_RECEIVED, HT_EV_TCP_RESET_SENT}) {
    reader.Dispatch(TcpRecord(clock, c, t));
  }
  auto short_rec = TcpRecord(clock, c, HT_EV_TCP_STATS);
  short_rec.resize(sizeof(ht_tcp_event) - 1);
  reader.Dispatch(short_rec);
  EXPECT_EQ(h.types, (std::vector<uint32_t>{8, 9, 10, 11}));
  EXPECT_EQ(reader.stats().malformed, 1u);
}

}  // namespace
}  // namespace hoptrace
