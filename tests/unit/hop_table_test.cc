#include "agent/hops/hop_table.h"

#include <gtest/gtest.h>

#include "hop_test_spans.h"

namespace hoptrace {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kS = 1000 * kMs;

Hop CallHop(const std::string& caller, const std::string& callee, int64_t total_ms,
            int64_t server_ms, int64_t srtt_us, int64_t hops = 1) {
  Hop h;
  h.caller = caller;
  h.callee = callee;
  h.callee_address = "10.0.0.2:9090";
  h.total_ns = total_ms * int64_t{kMs};
  h.server_ns = server_ms * int64_t{kMs};
  h.network_ns = (total_ms - server_ms) * int64_t{kMs};
  h.srtt_us = srtt_us;
  h.ip_hops = hops;
  return h;
}

TEST(HopTable, EdgeReportsRatePercentilesHopsRetransmitsErrors) {
  HopTable table;
  const uint64_t t0 = 100 * kS;
  for (int i = 1; i <= 100; ++i) {
    Hop h = CallHop("frontend", "backend", 20 + i, 10 + i, 1000 + i, i == 100 ? 2 : 1);
    h.retransmits = i % 10 == 0 ? 1 : 0;
    h.error = i <= 3;
    table.AddHop(h, t0 + static_cast<uint64_t>(i) * 50 * kMs);  // 20/s for 5 s
  }
  table.AddHop(CallHop("frontend", "cache", 1, 1, 10), t0);
  auto edges = table.Edges(t0 + 5 * kS);
  ASSERT_EQ(edges.size(), 2u);
  const EdgeReport& e = edges[0];  // busiest first
  EXPECT_EQ(e.caller, "frontend");
  EXPECT_EQ(e.callee, "backend");
  EXPECT_EQ(e.callee_address, "10.0.0.2:9090");
  EXPECT_EQ(e.requests, 100u);
  EXPECT_EQ(e.requests_total, 100u);
  EXPECT_NEAR(e.window_s, 4.95, 0.01);  // since the edge was first seen
  EXPECT_NEAR(e.rate_per_s, 100 / 4.95, 0.1);
  EXPECT_NEAR(static_cast<double>(e.total.p50), 70e6, 70e6 * 0.032);
  EXPECT_NEAR(static_cast<double>(e.total.p99), 119e6, 119e6 * 0.032);
  EXPECT_NEAR(static_cast<double>(e.server.p50), 60e6, 60e6 * 0.032);
  EXPECT_EQ(e.network.p50, 10 * kMs);  // every call: 10 ms of network
  EXPECT_EQ(e.network.p99, 10 * kMs);
  EXPECT_NEAR(static_cast<double>(e.srtt.p50), 1050, 1050 * 0.032);  // us
  EXPECT_EQ(e.ip_hops, 2);                                           // the last seen
  EXPECT_EQ(e.retransmits, 10u);
  EXPECT_EQ(e.errors, 3u);
}

TEST(HopTable, WindowsSlideOldCallsOut) {
  HopTableOptions o;
  o.window_ns = 10 * kS;
  HopTable table(o);
  const uint64_t t0 = 1000 * kS;
  for (int i = 0; i < 10; ++i) table.AddHop(CallHop("a", "b", 5, 1, 100), t0 + i * kMs);
  // 15 s later the calls are in the previous window: still reported.
  table.AddHop(CallHop("a", "b", 50, 1, 100), t0 + 15 * kS);
  auto e = table.Edges(t0 + 15 * kS)[0];
  EXPECT_EQ(e.requests, 11u);
  EXPECT_NEAR(e.window_s, 15.0, 0.01);
  // 25 s later they are gone; only the newer one remains.
  e = table.Edges(t0 + 25 * kS)[0];
  EXPECT_EQ(e.requests, 1u);
  EXPECT_EQ(e.requests_total, 11u);
  EXPECT_NEAR(static_cast<double>(e.total.p50), 50e6, 50e6 * 0.032);
  // After a long quiet nothing is in the windows.
  e = table.Edges(t0 + 100 * kS)[0];
  EXPECT_EQ(e.requests, 0u);
  EXPECT_EQ(e.rate_per_s, 0.0);
  EXPECT_EQ(e.total.count, 0u);
}

TEST(HopTable, EdgesAreBoundedLeastRecentlySeenGoes) {
  HopTableOptions o;
  o.max_edges = 2;
  HopTable table(o);
  table.AddHop(CallHop("a", "b", 1, 1, 1), 1 * kS);
  table.AddHop(CallHop("a", "c", 1, 1, 1), 2 * kS);
  table.AddHop(CallHop("a", "b", 1, 1, 1), 3 * kS);
  table.AddHop(CallHop("a", "d", 1, 1, 1), 4 * kS);  // a -> c is the stalest
  auto edges = table.Edges(5 * kS);
  ASSERT_EQ(edges.size(), 2u);
  EXPECT_EQ(edges[0].callee, "b");
  EXPECT_EQ(edges[1].callee, "d");
  EXPECT_EQ(table.stats().edges_evicted, 1u);
}

TEST(HopTable, RecentTracesAreBoundedNewestFirst) {
  HopTableOptions o;
  o.max_traces = 2;
  o.max_spans_per_trace = 2;
  HopTable table(o);
  for (uint8_t t = 1; t <= 3; ++t) {
    for (uint8_t s = 1; s <= 3; ++s) {
      Span span = testing::HttpSpan(SpanKind::kServer, "svc", s, 0, s * kMs, (s + 1) * kMs,
                                    "10.0.0.2", 80, "10.0.0.1", 1000);
      span.trace_id = testing::Tid(t);
      table.AddSpan(SummarizeSpan(span));
    }
  }
  EXPECT_TRUE(table.SpansOf(testing::Tid(1).Hex()).empty());  // evicted
  EXPECT_EQ(table.SpansOf(testing::Tid(3).Hex()).size(), 2u);
  EXPECT_EQ(table.stats().spans_dropped, 3u);
  EXPECT_EQ(table.stats().traces_evicted, 1u);
  auto recent = table.RecentTraces(10);
  ASSERT_EQ(recent.size(), 2u);
  EXPECT_EQ(recent[0]["trace_id"], testing::Tid(3).Hex());
  EXPECT_EQ(recent[1]["trace_id"], testing::Tid(2).Hex());
  EXPECT_EQ(recent[0]["duration_ns"], 2 * kMs);
  EXPECT_EQ(table.HopsOf(testing::Tid(3).Hex()).size(), 2u);  // two entry hops
}

TEST(EdgeJson, RoundTrips) {
  HopTable table;
  table.AddHop(CallHop("a", "b", 5, 2, 300), kS);
  EdgeReport e = table.Edges(2 * kS)[0];
  EXPECT_EQ(EdgeToJson(EdgeFromJson(EdgeToJson(e))), EdgeToJson(e));
  EXPECT_TRUE(EdgeToJson(e)["total_ns"]["p50"].is_number());
  Hop no_net = CallHop("x", "y", 5, 2, 300);
  no_net.server_ns.reset();
  no_net.network_ns.reset();
  no_net.srtt_us.reset();
  no_net.ip_hops.reset();
  table.AddHop(no_net, kS);
  for (const EdgeReport& r : table.Edges(2 * kS)) {
    if (r.caller == "x") {
      EXPECT_TRUE(EdgeToJson(r)["server_ns"].is_null());
      EXPECT_TRUE(EdgeToJson(r)["ip_hops"].is_null());
    }
  }
}

}  // namespace
}  // namespace hoptrace
