#include "agent/hops/hop_chain.h"

#include <gtest/gtest.h>

#include "exporters/console/span_json.h"
#include "hop_test_spans.h"

namespace hoptrace {
namespace {

using testing::HttpSpan;
using testing::Sid;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kT0 = 1'700'000'000'000'000'000;

std::vector<HopSpan> Summaries(const std::vector<Span>& spans) {
  std::vector<HopSpan> out;
  for (const Span& s : spans) out.push_back(SummarizeSpan(s));
  return out;
}

// curl (untraced) -> frontend -> backend, the backend's span paired by the agent.
std::vector<Span> Chain() {
  Span entry = HttpSpan(SpanKind::kServer, "frontend", 1, 0, kT0, kT0 + 80 * kMs, "10.0.1.2", 8080,
                        "10.0.1.1", 40000);
  entry.parent_span_id = Sid(99);  // a remote parent: not among the spans
  Span call = HttpSpan(SpanKind::kClient, "frontend", 2, 1, kT0 + 10 * kMs, kT0 + 70 * kMs,
                       "10.0.2.1", 50000, "10.0.2.2", 9090);
  call.attributes.push_back({"hoptrace.server.time_ns", int64_t{38 * kMs}});
  call.attributes.push_back({"hoptrace.network.time_ns", int64_t{22 * kMs}});
  call.attributes.push_back({"hoptrace.network.request_ns", int64_t{20 * kMs}});
  call.attributes.push_back({"hoptrace.network.response_ns", int64_t{2 * kMs}});
  call.attributes.push_back({"hoptrace.tcp.srtt_us", int64_t{20100}});
  call.attributes.push_back({"hoptrace.network.ip_hops", int64_t{2}});
  call.attributes.push_back({"hoptrace.tcp.retransmits", int64_t{1}});
  call.attributes.push_back({"hoptrace.network.retransmits", int64_t{3}});
  Span callee = HttpSpan(SpanKind::kServer, "backend", 3, 2, kT0 + 30 * kMs, kT0 + 68 * kMs,
                         "10.0.2.2", 9090, "10.0.2.1", 50000);
  return {callee, call, entry};  // any order
}

TEST(BuildHops, EntryHopThenPairedCallOneDeeper) {
  std::vector<Hop> hops = BuildHops(Summaries(Chain()));
  ASSERT_EQ(hops.size(), 2u);

  const Hop& in = hops[0];
  EXPECT_EQ(in.depth, 0);
  EXPECT_EQ(in.caller, "10.0.1.1");
  EXPECT_EQ(in.caller_address, "10.0.1.1:40000");
  EXPECT_EQ(in.callee, "frontend");
  EXPECT_EQ(in.callee_address, "10.0.1.2:8080");
  EXPECT_EQ(in.total_ns, std::nullopt);  // the caller was not traced
  EXPECT_EQ(in.server_ns, int64_t{80 * kMs});
  EXPECT_EQ(in.network_ns, std::nullopt);
  EXPECT_EQ(in.target, "/work");

  const Hop& call = hops[1];
  EXPECT_EQ(call.depth, 1);
  EXPECT_EQ(call.caller, "frontend");
  EXPECT_EQ(call.callee, "backend");
  EXPECT_EQ(call.callee_address, "10.0.2.2:9090");
  EXPECT_EQ(call.total_ns, int64_t{60 * kMs});
  EXPECT_EQ(call.server_ns, int64_t{38 * kMs});
  EXPECT_EQ(call.network_ns, int64_t{22 * kMs});
  EXPECT_EQ(call.request_ns, int64_t{20 * kMs});
  EXPECT_EQ(call.response_ns, int64_t{2 * kMs});
  EXPECT_EQ(call.srtt_us, 20100);
  EXPECT_EQ(call.ip_hops, 2);
  EXPECT_EQ(call.retransmits, 3);  // both ends, as the agent counted them
  EXPECT_EQ(call.client_span_id, Sid(2).Hex());
  EXPECT_EQ(call.server_span_id, Sid(3).Hex());
  EXPECT_EQ(call.status_code, 200);
}

TEST(BuildHops, WithoutTheAgentsPairingNetworkIsTotalMinusServer) {
  std::vector<Span> spans = Chain();
  spans[1].attributes.resize(9);  // the HTTP attributes only: as if from another host
  std::vector<Hop> hops = BuildHops(Summaries(spans));
  ASSERT_EQ(hops.size(), 2u);
  EXPECT_EQ(hops[1].server_ns, int64_t{38 * kMs});
  EXPECT_EQ(hops[1].network_ns, int64_t{22 * kMs});
  EXPECT_EQ(hops[1].request_ns, std::nullopt);  // two clocks: no one-way times
  EXPECT_EQ(hops[1].srtt_us, std::nullopt);
}

TEST(BuildHops, ProxyInTheMiddleIsAHopOfItsOwnAndUntracedCalleesEndTheChain) {
  // curl -> nginx -> backend -> db (not traced).
  Span ngx_in = HttpSpan(SpanKind::kServer, "nginx", 1, 0, kT0, kT0 + 50 * kMs, "10.0.1.2", 80,
                         "10.0.1.1", 40000);
  Span ngx_out = HttpSpan(SpanKind::kClient, "nginx", 2, 1, kT0 + 1 * kMs, kT0 + 49 * kMs,
                          "10.0.2.1", 51000, "10.0.2.2", 9090);
  Span be_in = HttpSpan(SpanKind::kServer, "backend", 3, 2, kT0 + 2 * kMs, kT0 + 48 * kMs,
                        "10.0.2.2", 9090, "10.0.2.1", 51000);
  Span db_call = HttpSpan(SpanKind::kClient, "backend", 4, 3, kT0 + 5 * kMs, kT0 + 45 * kMs,
                          "10.0.3.1", 52000, "10.0.3.2", 5432);
  Span second_call = HttpSpan(SpanKind::kClient, "backend", 5, 3, kT0 + 3 * kMs, kT0 + 4 * kMs,
                              "10.0.3.1", 52001, "10.0.3.3", 6379);
  std::vector<Hop> hops = BuildHops(Summaries({db_call, be_in, ngx_out, ngx_in, second_call}));
  ASSERT_EQ(hops.size(), 4u);
  EXPECT_EQ(hops[0].callee, "nginx");
  EXPECT_EQ(hops[0].depth, 0);
  EXPECT_EQ(hops[1].caller, "nginx");
  EXPECT_EQ(hops[1].callee, "backend");
  EXPECT_EQ(hops[1].depth, 1);
  EXPECT_EQ(hops[1].network_ns, int64_t{2 * kMs});
  // The backend's calls, in start order, one deeper; their callees untraced.
  EXPECT_EQ(hops[2].callee, "10.0.3.3:6379");
  EXPECT_EQ(hops[2].depth, 2);
  EXPECT_EQ(hops[3].callee, "10.0.3.2:5432");
  EXPECT_EQ(hops[3].callee_address, "10.0.3.2:5432");
  EXPECT_EQ(hops[3].total_ns, int64_t{40 * kMs});
  EXPECT_EQ(hops[3].server_ns, std::nullopt);
  EXPECT_EQ(hops[3].network_ns, std::nullopt);
}

TEST(SpanFromJson, ReadsBackWhatTheJsonlExporterWrites) {
  for (const Span& s : Chain()) {
    auto back = SpanFromJson(SpanToJson(s));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->trace_id, s.trace_id);
    EXPECT_EQ(back->span_id, s.span_id);
    EXPECT_EQ(back->parent_span_id, s.parent_span_id);
    EXPECT_EQ(back->kind, s.kind);
    EXPECT_EQ(back->start_unix_nano, s.start_unix_nano);
    EXPECT_EQ(back->end_unix_nano, s.end_unix_nano);
    EXPECT_EQ(back->resource->ServiceName(), s.resource->ServiceName());
    for (const Attribute& a : s.attributes) {
      const AttrValue* v = FindAttribute(back->attributes, a.key);
      ASSERT_NE(v, nullptr) << a.key;
      EXPECT_EQ(*v, a.value) << a.key;
    }
  }
  EXPECT_FALSE(SpanFromJson(nlohmann::json::parse(R"({"trace_id": "xyz"})")).has_value());
  EXPECT_FALSE(SpanFromJson(nlohmann::json::array()).has_value());
}

TEST(HopJson, RoundTrips) {
  for (const Hop& h : BuildHops(Summaries(Chain()))) {
    Hop back = HopFromJson(HopToJson(h));
    EXPECT_EQ(HopToJson(back), HopToJson(h));
  }
}

}  // namespace
}  // namespace hoptrace
