// The userspace pipeline without a kernel: records built by the event
// generator go through EventReader -> ConnTracker -> TraceStitcher, and the
// spans that come out are checked field by field.
#include <gtest/gtest.h>

#include <filesystem>

#include "agent/connections/conn_tracker.h"
#include "agent/kernel/event_reader.h"
#include "agent/process/process_registry.h"
#include "agent/trace/trace_stitcher.h"
#include "event_generator.h"

namespace hoptrace {
namespace {

using testing::ConnGenerator;
using testing::FakeClock;

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kParent = "00f067aa0ba902b7";
constexpr uint64_t kMs = 1'000'000;

std::string Attr(const Span& s, std::string_view key) {
  const AttrValue* v = FindAttribute(s.attributes, key);
  if (!v) return "<none>";
  if (auto* str = std::get_if<std::string>(v)) return *str;
  if (auto* i = std::get_if<int64_t>(v)) return std::to_string(*i);
  return "<other>";
}

class PipelineTest : public ::testing::Test, public EventHandler {
 protected:
  PipelineTest()
      : processes_("testhost", "/nonexistent-proc"),
        stitcher_(&processes_, [this](Span s) { spans_.push_back(std::move(s)); },
                  TraceStitcherOptions{}, IdGenerator(42)),
        tracker_(&stitcher_, Options()),
        reader_(this) {}

  static ConnTrackerOptions Options() {
    ConnTrackerOptions o;
    o.idle_timeout_ns = 10'000 * kMs;
    return o;
  }

  void Feed(const std::vector<uint8_t>& rec) { reader_.Dispatch(rec); }

  void OnConnOpen(const ConnEvent& ev) override { tracker_.OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_.OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_.OnConnClose(ev); }
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent& ev) override {
    tracker_.OnProcessExit(ev.hdr->pid, ev.hdr->ts_exit_ns);
  }
  void OnProcIdentity(const ProcIdentityEvent& ev) override {
    processes_.Learn(KernelIdentityOf(ev));
  }

  FakeClock clock_;
  ProcessRegistry processes_;
  std::vector<Span> spans_;
  TraceStitcher stitcher_;
  ConnTracker tracker_;
  EventReader reader_;
};

TEST_F(PipelineTest, ServerSpanJoinsIncomingTraceparentWithKernelDurations) {
  ConnGenerator srv(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1", 40000);
  Feed(srv.Open());
  Feed(srv.Data(HT_DIR_INGRESS,
                "GET /api?q=1 HTTP/1.1\r\nHost: shop:8080\r\ntraceparent: 00-" +
                    std::string(kTrace) + "-" + std::string(kParent) +
                    "-01\r\ntracestate: a=1\r\nAuthorization: Bearer secret\r\n\r\n"));
  const uint64_t request_read = clock_.now();
  clock_.Advance(25 * kMs);
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  const uint64_t response_written = clock_.now();

  ASSERT_EQ(spans_.size(), 1u);
  const Span& s = spans_[0];
  EXPECT_EQ(s.kind, SpanKind::kServer);
  EXPECT_EQ(s.name, "GET");
  EXPECT_EQ(s.trace_id.Hex(), kTrace);
  EXPECT_EQ(s.parent_span_id.Hex(), kParent);
  EXPECT_TRUE(s.span_id.IsValid());
  EXPECT_EQ(s.trace_state, "a=1");
  EXPECT_EQ(s.flags, 1);
  EXPECT_EQ(s.end_unix_nano - s.start_unix_nano, response_written - request_read);
  EXPECT_EQ(Attr(s, "url.path"), "/api");
  EXPECT_EQ(Attr(s, "url.query"), "q=REDACTED");
  EXPECT_EQ(Attr(s, "server.address"), "shop");
  EXPECT_EQ(Attr(s, "server.port"), "8080");
  EXPECT_EQ(Attr(s, "client.address"), "10.0.0.1");
  EXPECT_EQ(Attr(s, "client.port"), "40000");
  EXPECT_EQ(Attr(s, "http.response.status_code"), "200");
  EXPECT_EQ(s.status, StatusCode::kUnset);
  for (const auto& a : s.attributes) {
    EXPECT_EQ(std::get_if<std::string>(&a.value) == nullptr ||
                  std::get<std::string>(a.value).find("secret") == std::string::npos,
              true)
        << a.key;
  }
  EXPECT_EQ(s.resource->ServiceName(), "unknown_service");
  EXPECT_EQ(tracker_.tracked_connections(), 1u);
  Feed(srv.Close());
  EXPECT_EQ(tracker_.tracked_connections(), 0u);
}

TEST_F(PipelineTest, UnsampledIncomingTraceIsNotRecordedNorItsChildren) {
  // Default sampler parentbased_always_on: the caller's "not sampled" wins.
  ConnGenerator in(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1", 40000);
  ConnGenerator out(&clock_, 100, 6, HT_ROLE_CLIENT, "10.0.1.1", 50000, "10.0.1.2", 9090);
  Feed(in.Open());
  Feed(out.Open());
  Feed(in.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\ntraceparent: 00-" + std::string(kTrace) + "-" +
                                   std::string(kParent) + "-00\r\n\r\n"));
  Feed(out.Data(HT_DIR_EGRESS, "GET /b HTTP/1.1\r\n\r\n"));
  Feed(out.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Feed(in.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_TRUE(spans_.empty());
  EXPECT_EQ(stitcher_.stats().sampled_out, 2u);
}

TEST_F(PipelineTest, ClientCallOfServingThreadIsChildOfServerSpan) {
  ConnGenerator in(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1", 40000);
  ConnGenerator out(&clock_, 100, 6, HT_ROLE_CLIENT, "10.0.1.1", 50000, "10.0.1.2", 9090);
  in.set_tid(101);
  out.set_tid(101);
  Feed(in.Open());
  Feed(in.Data(HT_DIR_INGRESS, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n"));
  clock_.Advance(kMs);
  Feed(out.Open());
  Feed(out.Data(HT_DIR_EGRESS, "GET /b HTTP/1.1\r\nHost: backend:9090\r\n\r\n"));
  clock_.Advance(10 * kMs);
  Feed(out.Data(HT_DIR_INGRESS, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"));
  Feed(in.Data(HT_DIR_EGRESS, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"));

  ASSERT_EQ(spans_.size(), 2u);
  const Span& client = spans_[0];
  const Span& server = spans_[1];
  EXPECT_EQ(client.kind, SpanKind::kClient);
  EXPECT_EQ(server.kind, SpanKind::kServer);
  EXPECT_EQ(client.trace_id, server.trace_id);
  EXPECT_EQ(client.parent_span_id, server.span_id);
  EXPECT_FALSE(server.parent_span_id.IsValid());
  EXPECT_EQ(Attr(client, "url.full"), "http://backend:9090/b");
  EXPECT_EQ(Attr(client, "server.address"), "backend");
  EXPECT_EQ(Attr(client, "network.peer.address"), "10.0.1.2");
  // A client span errs on 4xx/5xx; a server span on 5xx.
  EXPECT_EQ(client.status, StatusCode::kError);
  EXPECT_EQ(Attr(client, "error.type"), "503");
  EXPECT_EQ(server.status, StatusCode::kError);
  EXPECT_EQ(Attr(server, "error.type"), "502");
}

TEST_F(PipelineTest, EventLoopCallsTakeTheOldestUnclaimedServerSpanOfTheThread) {
  // One thread (an event loop) reads three requests, then makes one call per
  // request in arrival order on one keep-alive connection, and a fourth call
  // while all three are claimed: that one goes to the newest.
  std::vector<ConnGenerator> in;
  for (int i = 0; i < 3; ++i) {
    in.emplace_back(&clock_, 100, 5 + i, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1",
                    40000 + i);
    in.back().set_tid(101);
  }
  ConnGenerator out(&clock_, 100, 9, HT_ROLE_CLIENT, "10.0.1.1", 50000, "10.0.1.2", 9090);
  out.set_tid(101);
  Feed(out.Open());
  for (int i = 0; i < 3; ++i) {
    Feed(in[i].Open());
    Feed(in[i].Data(HT_DIR_INGRESS, "GET /r" + std::to_string(i) + " HTTP/1.1\r\n\r\n"));
    clock_.Advance(kMs);
  }
  for (int i = 0; i < 4; ++i) {
    Feed(out.Data(HT_DIR_EGRESS, "GET /call" + std::to_string(i) + " HTTP/1.1\r\n\r\n"));
    Feed(out.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    clock_.Advance(kMs);
  }
  for (int i = 0; i < 3; ++i) {
    Feed(in[i].Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  }
  ASSERT_EQ(spans_.size(), 7u);
  std::vector<const Span*> calls, servers;
  for (const Span& s : spans_) (s.kind == SpanKind::kClient ? calls : servers).push_back(&s);
  ASSERT_EQ(calls.size(), 4u);
  ASSERT_EQ(servers.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Attr(*servers[i], "url.path"), "/r" + std::to_string(i));
    EXPECT_EQ(calls[i]->parent_span_id, servers[i]->span_id) << i;
    EXPECT_EQ(calls[i]->trace_id, servers[i]->trace_id) << i;
  }
  EXPECT_EQ(calls[3]->parent_span_id, servers[2]->span_id);
  EXPECT_EQ(stitcher_.open_server_spans(), 0u);
}

TEST_F(PipelineTest, OtherThreadsClientCallIsNotAChild) {
  ConnGenerator in(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1", 40000);
  ConnGenerator out(&clock_, 100, 6, HT_ROLE_CLIENT, "10.0.1.1", 50000, "10.0.1.2", 9090);
  in.set_tid(101);
  out.set_tid(202);
  Feed(in.Data(HT_DIR_INGRESS, "GET /a HTTP/1.1\r\n\r\n"));
  Feed(out.Data(HT_DIR_EGRESS, "GET /b HTTP/1.1\r\n\r\n"));
  Feed(out.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_FALSE(spans_[0].parent_span_id.IsValid());
}

TEST_F(PipelineTest, ServerOnSameHostIsLinkedToTracedClientByTuple) {
  // Process 1 calls process 2; the request carries no traceparent.
  ConnGenerator cli(&clock_, 1, 7, HT_ROLE_CLIENT, "10.0.0.1", 40000, "10.0.0.2", 80);
  ConnGenerator srv(&clock_, 2, 4, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 40000);
  Feed(cli.Open());
  Feed(srv.Open());
  for (int i = 0; i < 2; ++i) {  // keep-alive: the queue stays in step
    Feed(cli.Data(HT_DIR_EGRESS, "GET /x HTTP/1.1\r\n\r\n"));
    Feed(srv.Data(HT_DIR_INGRESS, "GET /x HTTP/1.1\r\n\r\n"));
    Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    Feed(cli.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  }
  ASSERT_EQ(spans_.size(), 4u);
  for (int i = 0; i < 2; ++i) {
    const Span& server = spans_[2 * i];
    const Span& client = spans_[2 * i + 1];
    EXPECT_EQ(server.kind, SpanKind::kServer);
    EXPECT_EQ(client.kind, SpanKind::kClient);
    EXPECT_EQ(server.trace_id, client.trace_id);
    EXPECT_EQ(server.parent_span_id, client.span_id);
  }
  EXPECT_NE(spans_[0].trace_id, spans_[2].trace_id);
  EXPECT_EQ(stitcher_.stats().server_spans_linked_locally, 2u);
  EXPECT_EQ(stitcher_.outbound_waiting(), 0u);
}

TEST_F(PipelineTest, ServerReportedBeforeItsTracedCallerJoinsTheCallersTrace) {
  // The writer is preempted between handing the request over and its
  // syscall's exit: the reader's event comes first. The server has already
  // made its own call (thread parent) when the caller's event arrives.
  ConnGenerator cli(&clock_, 1, 7, HT_ROLE_CLIENT, "10.0.0.1", 40000, "10.0.0.2", 80);
  ConnGenerator srv(&clock_, 2, 4, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 40000);
  ConnGenerator down(&clock_, 2, 5, HT_ROLE_CLIENT, "10.0.0.2", 50000, "10.0.0.3", 9090);
  srv.set_tid(21);
  down.set_tid(21);
  Feed(cli.Open());
  Feed(srv.Open());
  Feed(down.Open());
  for (int i = 0; i < 2; ++i) {  // keep-alive: the second request too
    Feed(srv.Data(HT_DIR_INGRESS, "GET /x HTTP/1.1\r\n\r\n"));
    Feed(down.Data(HT_DIR_EGRESS, "GET /y HTTP/1.1\r\n\r\n"));
    Feed(cli.Data(HT_DIR_EGRESS, "GET /x HTTP/1.1\r\n\r\n"));
    Feed(down.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    Feed(cli.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  }
  ASSERT_EQ(spans_.size(), 6u);
  for (int i = 0; i < 2; ++i) {
    const Span& call = spans_[3 * i];
    const Span& server = spans_[3 * i + 1];
    const Span& client = spans_[3 * i + 2];
    ASSERT_EQ(call.kind, SpanKind::kClient);
    ASSERT_EQ(server.kind, SpanKind::kServer);
    ASSERT_EQ(client.kind, SpanKind::kClient);
    EXPECT_EQ(Attr(server, "url.path"), "/x");
    EXPECT_EQ(server.parent_span_id, client.span_id) << i;
    EXPECT_EQ(server.trace_id, client.trace_id) << i;
    EXPECT_EQ(call.parent_span_id, server.span_id) << i;
    EXPECT_EQ(call.trace_id, client.trace_id) << i;
  }
  EXPECT_NE(spans_[0].trace_id, spans_[3].trace_id);
  EXPECT_EQ(stitcher_.stats().server_spans_linked_late, 2u);
  EXPECT_EQ(stitcher_.outbound_waiting(), 0u);
}

TEST_F(PipelineTest, ServerWithUntracedCallerWaitsOnlyWhileItsExchangeIsOpen) {
  // The caller is not traced: the server's span starts a trace, and a later
  // client on a new connection that happens to reuse the 4-tuple adopts
  // nothing.
  ConnGenerator srv(&clock_, 2, 4, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 40000);
  Feed(srv.Open());
  Feed(srv.Data(HT_DIR_INGRESS, "GET /x HTTP/1.1\r\n\r\n"));
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ConnGenerator cli(&clock_, 1, 7, HT_ROLE_CLIENT, "10.0.0.1", 40000, "10.0.0.2", 80);
  Feed(cli.Open());
  Feed(cli.Data(HT_DIR_EGRESS, "GET /late HTTP/1.1\r\n\r\n"));
  Feed(cli.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 2u);
  EXPECT_NE(spans_[0].trace_id, spans_[1].trace_id);
  EXPECT_FALSE(spans_[0].parent_span_id.IsValid());
  EXPECT_EQ(stitcher_.stats().server_spans_linked_late, 0u);
}

TEST_F(PipelineTest, OpenServerSpanIsFoundByIdOnlyIfItBeganBeforeTheCall) {
  // Two requests read by one thread (goroutines sharing it): each is found
  // by its own id, whatever the thread served last, and not for a call that
  // began before its request did; once answered it is gone.
  ConnGenerator a(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1", 40000);
  ConnGenerator b(&clock_, 100, 6, HT_ROLE_SERVER, "10.0.0.2", 8080, "10.0.0.1", 40001);
  a.set_tid(7);
  b.set_tid(7);
  Feed(a.Data(HT_DIR_INGRESS, "GET /a HTTP/1.1\r\n\r\n"));
  const uint64_t between = clock_.now();
  clock_.Advance(kMs);
  Feed(b.Data(HT_DIR_INGRESS, "GET /b HTTP/1.1\r\n\r\n"));
  clock_.Advance(kMs);
  const uint64_t after = clock_.now();
  auto newest = stitcher_.ServingSpan(100, 7);
  ASSERT_TRUE(newest);
  Feed(a.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  const SpanId a_id = spans_[0].span_id;
  EXPECT_FALSE(stitcher_.OpenServerSpan(100, a_id, after)) << "answered: no longer open";
  EXPECT_TRUE(stitcher_.OpenServerSpan(100, newest->span_id, after));
  EXPECT_FALSE(stitcher_.OpenServerSpan(100, newest->span_id, between)) << "began after the call";
  EXPECT_FALSE(stitcher_.OpenServerSpan(101, newest->span_id, after)) << "another process";
}

TEST_F(PipelineTest, UntracedServerLeavesNoClientContextBehind) {
  ConnGenerator cli(&clock_, 1, 7, HT_ROLE_CLIENT, "10.0.0.1", 40000, "93.184.216.34", 80);
  Feed(cli.Open());
  Feed(cli.Data(HT_DIR_EGRESS, "GET / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(stitcher_.outbound_waiting(), 1u);
  Feed(cli.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(stitcher_.outbound_waiting(), 0u);
}

TEST_F(PipelineTest, ReusedFdEndsTheOldConnection) {
  ConnGenerator first(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 1111);
  Feed(first.Open());
  Feed(first.Data(HT_DIR_INGRESS, "GET /old HTTP/1.1\r\n\r\n"));
  clock_.Advance(kMs);
  ConnGenerator second(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 2222);
  Feed(second.Open());
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(Attr(spans_[0], "url.path"), "/old");
  EXPECT_EQ(Attr(spans_[0], "error.type"), "no_response");
  EXPECT_EQ(spans_[0].status, StatusCode::kError);
  EXPECT_EQ(tracker_.tracked_connections(), 1u);
  EXPECT_EQ(tracker_.stats().fd_reused, 1u);
}

TEST_F(PipelineTest, ProcessExitReportsInFlightRequestAndForgetsConnections) {
  ConnGenerator a(&clock_, 300, 5, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 1111);
  ConnGenerator b(&clock_, 300, 6, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 1112);
  Feed(a.Open());
  Feed(b.Open());
  Feed(a.Data(HT_DIR_INGRESS, "POST /pay HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"));
  const uint64_t read_at = clock_.now();
  clock_.Advance(40 * kMs);
  Feed(testing::ProcExit(clock_, 300));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(spans_[0].name, "POST");
  EXPECT_EQ(Attr(spans_[0], "error.type"), "process_exit");
  EXPECT_EQ(Attr(spans_[0], "http.request.body.size"), "3");
  EXPECT_EQ(Attr(spans_[0], "http.response.status_code"), "<none>");
  EXPECT_EQ(spans_[0].end_unix_nano - spans_[0].start_unix_nano, clock_.now() - read_at);
  EXPECT_EQ(tracker_.tracked_connections(), 0u);
  EXPECT_EQ(stitcher_.open_server_spans(), 0u);
}

// The process is never in (this test's) /proc: a CLI gone before the agent
// looked. Its span is named by what the kernel said at its exec.
TEST_F(PipelineTest, ClientSpanOfAProcessGoneFromProcCarriesItsKernelIdentity) {
  Feed(testing::ProcIdentity(clock_, 700, 650, "curl", "/usr/bin/curl", HT_IDENTITY_F_EXEC,
                             42 * 10'000'000ULL));
  ConnGenerator c(&clock_, 700, 3, HT_ROLE_CLIENT, "10.0.0.1", 40000, "10.0.0.2", 80);
  Feed(c.Open());
  Feed(c.Data(HT_DIR_EGRESS, "GET /x HTTP/1.1\r\nHost: shop\r\n\r\n"));
  Feed(c.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Feed(testing::ProcExit(clock_, 700));
  ASSERT_EQ(spans_.size(), 1u);
  ASSERT_NE(spans_[0].resource, nullptr);
  const Attributes& r = spans_[0].resource->attributes;
  EXPECT_EQ(spans_[0].resource->ServiceName(), "curl");
  EXPECT_EQ(*FindAttribute(r, "process.executable.name"), AttrValue(std::string("curl")));
  EXPECT_EQ(*FindAttribute(r, "process.executable.path"), AttrValue(std::string("/usr/bin/curl")));
  EXPECT_EQ(*FindAttribute(r, "process.pid"), AttrValue(int64_t{700}));
  EXPECT_EQ(*FindAttribute(r, "process.parent_pid"), AttrValue(int64_t{650}));
  EXPECT_EQ(*FindAttribute(r, "process.command"), AttrValue(std::string("curl")));
  EXPECT_EQ(reader_.stats().malformed, 0u);

  // A record cut short is not an identity.
  auto cut = testing::ProcIdentity(clock_, 701, 650, "x", "/x", HT_IDENTITY_F_EXEC, 0);
  cut.resize(sizeof(ht_proc_identity_event) - 1);
  Feed(cut);
  EXPECT_EQ(reader_.stats().malformed, 1u);
  EXPECT_EQ(processes_.size(), 1u);
}

TEST_F(PipelineTest, IdleConnectionsAreClosedByTick) {
  ConnGenerator c(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 1111);
  Feed(c.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n"));
  Feed(c.Data(HT_DIR_EGRESS, "HTTP/1.1 204 No Content\r\n\r\n"));
  tracker_.Tick(clock_.Advance(5'000 * kMs));
  EXPECT_EQ(tracker_.tracked_connections(), 1u);
  tracker_.Tick(clock_.Advance(6'000 * kMs));
  EXPECT_EQ(tracker_.tracked_connections(), 0u);
  EXPECT_EQ(spans_.size(), 1u);  // the finished exchange, nothing more
}

TEST_F(PipelineTest, LostOpenEventStillYieldsSpanWithInferredRole) {
  ConnGenerator c(&clock_, 100, 5, HT_ROLE_UNKNOWN, "10.0.0.2", 80, "10.0.0.1", 1111);
  Feed(c.Data(HT_DIR_INGRESS, "GET /late HTTP/1.1\r\n\r\n"));
  Feed(c.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(spans_[0].kind, SpanKind::kServer);
  EXPECT_EQ(Attr(spans_[0], "url.path"), "/late");
  EXPECT_EQ(Attr(spans_[0], "client.address"), "<none>");  // tuple never seen
  EXPECT_EQ(tracker_.stats().opened_by_data, 1u);
}

TEST_F(PipelineTest, ShutdownReportsNothingFalse) {
  ConnGenerator c(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 1111);
  Feed(c.Data(HT_DIR_INGRESS, "GET /slow HTTP/1.1\r\n\r\n"));
  tracker_.CloseAll(clock_.now(), CloseReason::kShutdown);
  EXPECT_TRUE(spans_.empty());
  EXPECT_EQ(stitcher_.stats().dropped_at_shutdown, 1u);
  EXPECT_EQ(tracker_.tracked_connections(), 0u);
}

TEST_F(PipelineTest, MalformedRecordsAreCountedAndDropped) {
  Feed(std::vector<uint8_t>(10, 0xff));  // shorter than a header
  ConnGenerator c(&clock_, 100, 5, HT_ROLE_SERVER, "10.0.0.2", 80, "10.0.0.1", 1111);
  auto rec = c.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n");
  reinterpret_cast<ht_data_event*>(rec.data())->captured = 4096;  // beyond the record
  Feed(rec);
  auto bad_type = c.Open();
  reinterpret_cast<ht_event_header*>(bad_type.data())->type = 99;
  Feed(bad_type);
  EXPECT_EQ(reader_.stats().malformed, 3u);
  EXPECT_EQ(tracker_.tracked_connections(), 0u);
  EXPECT_TRUE(spans_.empty());
}

}  // namespace
}  // namespace hoptrace
