// The agent's side of kernel-side context propagation, without a kernel:
// HT_EV_SERVER_CTX / HT_EV_CLIENT_CTX records built as bpf/head_scan.bpf.h and
// bpf/inject.bpf.h build them go through EventReader -> TraceStitcher next to
// the data events, and the spans must carry exactly the kernel's ids.
#include <gtest/gtest.h>

#include <cstring>

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
constexpr std::string_view kKernelSpan = "1111111111111111";
constexpr std::string_view kInjected = "2222222222222222";
constexpr std::string_view kKernelTrace = "abcdefabcdefabcdefabcdefabcdef01";

template <size_t N>
void FromHex(std::string_view hex, uint8_t (&out)[N]) {
  for (size_t i = 0; i < N; ++i) out[i] = std::stoi(std::string(hex.substr(2 * i, 2)), nullptr, 16);
}

// What the kernel reports for the request whose first byte a syscall entered
// at ts_enter moved.
struct Ctx {
  ht_event_type type = HT_EV_SERVER_CTX;
  uint32_t pid = 100, tid = 100;
  int32_t fd = 5;
  uint64_t gen = 0, ts_enter = 0;
  std::string_view trace = kKernelTrace, span = kKernelSpan, parent = "0000000000000000";
  uint8_t flags = 1;
  ht_ctx_origin origin = HT_CTX_NEW_TRACE;
  std::string tracestate = "";

  std::vector<uint8_t> Record() const {
    std::vector<uint8_t> rec(sizeof(ht_ctx_event));
    auto* ev = reinterpret_cast<ht_ctx_event*>(rec.data());
    ev->hdr.type = type;
    ev->hdr.pid = pid;
    ev->hdr.tid = tid;
    ev->hdr.fd = fd;
    ev->hdr.conn_gen = gen;
    ev->hdr.ts_enter_ns = ts_enter;
    ev->hdr.ts_exit_ns = ts_enter + 500;
    FromHex(trace, ev->trace_id);
    FromHex(span, ev->span_id);
    FromHex(parent, ev->parent_id);
    ev->trace_flags = flags;
    ev->origin = origin;
    ev->tracestate_len = tracestate.size();
    memcpy(ev->tracestate, tracestate.data(), tracestate.size());
    return rec;
  }
};

class KernelContextTest : public ::testing::Test, public EventHandler {
 protected:
  KernelContextTest()
      : processes_("testhost", "/nonexistent-proc"),
        stitcher_(
            &processes_, [this](Span s) { spans_.push_back(std::move(s)); }, TraceStitcherOptions{},
            IdGenerator(7)),
        tracker_(&stitcher_),
        reader_(this) {}

  void Feed(const std::vector<uint8_t>& rec) { reader_.Dispatch(rec); }
  void OnConnOpen(const ConnEvent& ev) override { tracker_.OnConnOpen(ev); }
  void OnData(const DataEvent& ev) override { tracker_.OnData(ev); }
  void OnConnClose(const ConnEvent& ev) override { tracker_.OnConnClose(ev); }
  void OnProcExec(const ProcEvent&) override {}
  void OnProcExit(const ProcEvent&) override {}
  void OnTraceContext(const CtxEvent& ev) override {
    stitcher_.OnKernelContext(ConnId{ev.hdr->pid, ev.hdr->fd, ev.hdr->conn_gen},
                              KernelContextFrom(ev));
  }

  // A connection; its generation is the clock when it was made.
  std::pair<ConnGenerator, uint64_t> Conn(int32_t fd, ht_role role, uint16_t lport, uint16_t rport,
                                          const char* local = "10.0.0.2",
                                          const char* remote = "10.0.0.1", uint32_t pid = 100) {
    const uint64_t gen = clock_.now();
    return {ConnGenerator(&clock_, pid, fd, role, local, lport, remote, rport), gen};
  }

  const Span* Find(SpanKind kind) const {
    for (const auto& s : spans_) {
      if (s.kind == kind) return &s;
    }
    return nullptr;
  }

  FakeClock clock_;
  ProcessRegistry processes_;
  std::vector<Span> spans_;
  TraceStitcher stitcher_;
  ConnTracker tracker_;
  EventReader reader_;
};

TEST_F(KernelContextTest, ServerSpanCarriesTheKernelsNewTrace) {
  auto [srv, gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  Feed(srv.Open());
  Feed(Ctx{.gen = gen, .ts_enter = clock_.now()}.Record());
  Feed(srv.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(spans_[0].trace_id.Hex(), kKernelTrace);
  EXPECT_EQ(spans_[0].span_id.Hex(), kKernelSpan);
  EXPECT_FALSE(spans_[0].parent_span_id.IsValid());
  EXPECT_EQ(stitcher_.stats().server_spans_from_kernel, 1u);
  EXPECT_EQ(stitcher_.kernel_contexts_waiting(), 0u);
}

TEST_F(KernelContextTest, KernelDecisionWinsOverTheAgentsOwnParse) {
  // Two traceparent fields: the kernel restarts the trace (a list of two is
  // no traceparent); the agent's parser alone would have taken the first.
  auto [srv, gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  Feed(srv.Open());
  Feed(Ctx{.gen = gen, .ts_enter = clock_.now(), .origin = HT_CTX_INVALID}.Record());
  const std::string tp =
      "traceparent: 00-" + std::string(kTrace) + "-" + std::string(kParent) + "-01\r\n";
  Feed(srv.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\n" + tp + tp + "tracestate: a=1\r\n\r\n"));
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(spans_[0].trace_id.Hex(), kKernelTrace);
  EXPECT_FALSE(spans_[0].parent_span_id.IsValid());
  EXPECT_EQ(spans_[0].trace_state, "");
  EXPECT_EQ(stitcher_.stats().invalid_traceparent, 1u);
}

TEST_F(KernelContextTest, RemoteParentAndTracestateComeFromTheKernel) {
  auto [srv, gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  Feed(srv.Open());
  Feed(Ctx{.gen = gen,
           .ts_enter = clock_.now(),
           .trace = kTrace,
           .parent = kParent,
           .origin = HT_CTX_REMOTE,
           .tracestate = "k=v,o=1"}
           .Record());
  Feed(srv.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\ntraceparent: 00-" + std::string(kTrace) + "-" +
                                    std::string(kParent) + "-01\r\ntracestate: k=v,o=1\r\n\r\n"));
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 204 No Content\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_EQ(spans_[0].trace_id.Hex(), kTrace);
  EXPECT_EQ(spans_[0].span_id.Hex(), kKernelSpan);
  EXPECT_EQ(spans_[0].parent_span_id.Hex(), kParent);
  EXPECT_EQ(spans_[0].trace_state, "k=v,o=1");
  EXPECT_EQ(spans_[0].flags, 1);
}

TEST_F(KernelContextTest, UnsampledKernelDecisionIsNotRecorded) {
  auto [srv, gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  Feed(srv.Open());
  Feed(Ctx{.gen = gen, .ts_enter = clock_.now(), .flags = 0}.Record());
  Feed(srv.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n"));
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 204 No Content\r\n\r\n"));
  EXPECT_TRUE(spans_.empty());
  EXPECT_EQ(stitcher_.stats().sampled_out, 1u);
}

TEST_F(KernelContextTest, ClientSpanHasTheInjectedSpanIdAndTheKernelsParent) {
  auto [in, in_gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  auto [out, out_gen] = Conn(6, HT_ROLE_CLIENT, 50000, 9090, "10.0.1.1", "10.0.1.2");
  Feed(in.Open());
  Feed(Ctx{.gen = in_gen, .ts_enter = clock_.now()}.Record());
  Feed(in.Data(HT_DIR_INGRESS, "GET /a HTTP/1.1\r\n\r\n"));
  Feed(out.Open());
  // Another thread writes it (a pool worker): only the kernel knew.
  out.set_tid(999);
  Feed(Ctx{.type = HT_EV_CLIENT_CTX,
           .tid = 999,
           .fd = 6,
           .gen = out_gen,
           .ts_enter = clock_.now(),
           .span = kInjected,
           .parent = kKernelSpan,
           .origin = HT_CTX_INJECTED}
           .Record());
  Feed(out.Data(HT_DIR_EGRESS, "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"));
  Feed(out.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Feed(in.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  const Span* server = Find(SpanKind::kServer);
  const Span* client = Find(SpanKind::kClient);
  ASSERT_TRUE(server && client);
  EXPECT_EQ(client->span_id.Hex(), kInjected);
  EXPECT_EQ(client->parent_span_id.Hex(), kKernelSpan);
  EXPECT_EQ(client->trace_id.Hex(), kKernelTrace);
  EXPECT_EQ(client->parent_span_id, server->span_id);
  EXPECT_EQ(stitcher_.stats().client_spans_from_kernel, 1u);
}

TEST_F(KernelContextTest, DecisionForAnotherRequestIsNotUsedAndIsCounted) {
  auto [srv, gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  Feed(srv.Open());
  // A decision for bytes the parser never reported as a request.
  Feed(Ctx{.gen = gen, .ts_enter = clock_.now()}.Record());
  clock_.Advance(1000);
  Feed(srv.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n"));
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 204 No Content\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 1u);
  EXPECT_NE(spans_[0].span_id.Hex(), kKernelSpan);
  EXPECT_EQ(stitcher_.stats().kernel_contexts_unmatched, 1u);
  EXPECT_EQ(stitcher_.kernel_contexts_waiting(), 0u);
}

TEST_F(KernelContextTest, DecisionsOfAConnectionThatGoesAwayAreDropped) {
  auto [srv, gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  Feed(srv.Open());
  Feed(srv.Data(HT_DIR_INGRESS, "GET / HTTP/1.1\r\n\r\n"));
  clock_.Advance(1000);
  Feed(Ctx{.gen = gen, .ts_enter = clock_.now()}.Record());
  Feed(srv.Close());
  EXPECT_EQ(stitcher_.kernel_contexts_waiting(), 0u);
  // Never claimed, never seen: expired by Tick as well.
  Feed(Ctx{.fd = 77, .gen = 1, .ts_enter = clock_.now()}.Record());
  EXPECT_EQ(stitcher_.kernel_contexts_waiting(), 1u);
  stitcher_.Tick(clock_.now() + 61ull * 1000 * 1000 * 1000);
  EXPECT_EQ(stitcher_.kernel_contexts_waiting(), 0u);
}

TEST_F(KernelContextTest, PassedOnTraceparentMakesTheClientAChildOfTheServerThatGotIt) {
  // A proxy (no kernel decision here): its request to the upstream carries
  // the caller's traceparent unchanged, written by another thread.
  auto [in, in_gen] = Conn(5, HT_ROLE_SERVER, 8080, 40000);
  auto [out, out_gen] = Conn(6, HT_ROLE_CLIENT, 50000, 9090, "10.0.1.1", "10.0.1.2");
  const std::string tp =
      "traceparent: 00-" + std::string(kTrace) + "-" + std::string(kParent) + "-01\r\n";
  Feed(in.Open());
  Feed(in.Data(HT_DIR_INGRESS, "GET /a HTTP/1.1\r\n" + tp + "\r\n"));
  Feed(out.Open());
  out.set_tid(4242);
  Feed(out.Data(HT_DIR_EGRESS, "GET /a HTTP/1.1\r\n" + tp + "\r\n"));
  Feed(out.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Feed(in.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  const Span* server = Find(SpanKind::kServer);
  const Span* client = Find(SpanKind::kClient);
  ASSERT_TRUE(server && client);
  EXPECT_EQ(server->parent_span_id.Hex(), kParent);
  EXPECT_EQ(client->parent_span_id, server->span_id);
  EXPECT_NE(client->span_id.Hex(), kParent);  // no duplicate span ids
  EXPECT_EQ(stitcher_.stats().client_spans_passthrough, 1u);
}

TEST_F(KernelContextTest, ServerBehindAProxyOnThisHostIsTheChildOfItsClientSpan) {
  // Proxy (pid 100) passes the caller's traceparent on to a server (pid 200)
  // on the same host: the server's parent is the proxy's CLIENT span, not the
  // caller's span the header names.
  auto [px_out, px_gen] = Conn(6, HT_ROLE_CLIENT, 50000, 9090, "10.0.1.1", "10.0.1.2");
  auto [srv, srv_gen] = Conn(7, HT_ROLE_SERVER, 9090, 50000, "10.0.1.2", "10.0.1.1", 200);
  const std::string tp =
      "traceparent: 00-" + std::string(kTrace) + "-" + std::string(kParent) + "-01\r\n";
  Feed(px_out.Open());
  Feed(px_out.Data(HT_DIR_EGRESS, "GET /x HTTP/1.1\r\n" + tp + "\r\n"));
  Feed(srv.Open());
  Feed(Ctx{.pid = 200,
           .tid = 200,
           .fd = 7,
           .gen = srv_gen,
           .ts_enter = clock_.now(),
           .trace = kTrace,
           .parent = kParent,
           .origin = HT_CTX_REMOTE}
           .Record());
  Feed(srv.Data(HT_DIR_INGRESS, "GET /x HTTP/1.1\r\n" + tp + "\r\n"));
  Feed(srv.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Feed(px_out.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  const Span* server = Find(SpanKind::kServer);
  const Span* client = Find(SpanKind::kClient);
  ASSERT_TRUE(server && client);
  EXPECT_EQ(server->span_id.Hex(), kKernelSpan);
  EXPECT_EQ(server->trace_id.Hex(), kTrace);
  EXPECT_EQ(server->parent_span_id, client->span_id);
  EXPECT_EQ(stitcher_.stats().server_spans_relinked, 1u);
}

TEST_F(KernelContextTest, NewTraceOfAServerWithALocalCallerJoinsTheCallersTraceDownstreamToo) {
  // curl (pid 300, traced, not injected: no traceparent) -> server (pid 100):
  // the kernel starts trace K for the server and injects K into its call;
  // on this host the agent reports all of it in the caller's trace.
  auto [caller, caller_gen] = Conn(3, HT_ROLE_CLIENT, 41000, 8080, "10.0.0.1", "10.0.0.2", 300);
  auto [in, in_gen] = Conn(5, HT_ROLE_SERVER, 8080, 41000);
  auto [out, out_gen] = Conn(6, HT_ROLE_CLIENT, 50000, 9090, "10.0.1.1", "10.0.1.2");
  Feed(caller.Open());
  Feed(caller.Data(HT_DIR_EGRESS, "GET /a HTTP/1.1\r\n\r\n"));
  Feed(in.Open());
  Feed(Ctx{.gen = in_gen, .ts_enter = clock_.now()}.Record());
  Feed(in.Data(HT_DIR_INGRESS, "GET /a HTTP/1.1\r\n\r\n"));
  Feed(out.Open());
  Feed(Ctx{.type = HT_EV_CLIENT_CTX,
           .fd = 6,
           .gen = out_gen,
           .ts_enter = clock_.now(),
           .span = kInjected,
           .parent = kKernelSpan,
           .origin = HT_CTX_INJECTED}
           .Record());
  Feed(out.Data(HT_DIR_EGRESS, "GET /b HTTP/1.1\r\n\r\n"));
  Feed(out.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Feed(in.Data(HT_DIR_EGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  Feed(caller.Data(HT_DIR_INGRESS, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  ASSERT_EQ(spans_.size(), 3u);
  const Span* server = Find(SpanKind::kServer);
  std::vector<const Span*> clients;
  for (const auto& s : spans_) {
    if (s.kind == SpanKind::kClient) clients.push_back(&s);
  }
  ASSERT_TRUE(server);
  ASSERT_EQ(clients.size(), 2u);
  const Span* root = clients[0]->span_id.Hex() == kInjected ? clients[1] : clients[0];
  const Span* call = clients[0]->span_id.Hex() == kInjected ? clients[0] : clients[1];
  EXPECT_EQ(server->span_id.Hex(), kKernelSpan);
  EXPECT_EQ(server->parent_span_id, root->span_id);
  EXPECT_EQ(server->trace_id, root->trace_id);
  EXPECT_EQ(call->parent_span_id, server->span_id);
  EXPECT_EQ(call->trace_id, root->trace_id);  // not the kernel's K
  EXPECT_EQ(stitcher_.stats().kernel_traces_aliased, 1u);
}

TEST_F(KernelContextTest, MalformedContextRecordIsDropped) {
  auto rec = Ctx{}.Record();
  reinterpret_cast<ht_ctx_event*>(rec.data())->tracestate_len = HT_TRACESTATE_MAX + 1;
  Feed(rec);
  rec.resize(sizeof(ht_ctx_event) - 1);
  Feed(rec);
  EXPECT_EQ(reader_.stats().malformed, 2u);
  EXPECT_EQ(stitcher_.kernel_contexts_waiting(), 0u);
}

}  // namespace
}  // namespace hoptrace
