// Decides the trace context of every exchange's span and emits the spans.
//
// The kernel's decision comes first: with propagation on, the kernel decides
// the context of every request a selected process reads (HT_EV_SERVER_CTX)
// and of every request it writes a traceparent into (HT_EV_CLIENT_CTX), and
// those ids are on the wire, so the spans must carry exactly them. A kernel
// context is matched to its request by connection and by the entry time of
// the syscall that moved the request's first byte. Without one:
//
// - SERVER span: the request's valid W3C traceparent (trace id, parent =
//   its parent-id, flags, tracestate); else, when this host also traced the
//   CLIENT side of the same TCP connection, that client span as parent;
//   else a new trace. Invalid traceparents start a new trace (W3C 3.2.2.x).
//   When the traceparent names the caller's parent rather than the caller's
//   CLIENT span traced here (a proxy passed it through), the CLIENT span is
//   the parent: same trace, one more link. When the kernel started a new
//   trace but the caller is traced here (it sent no header), the SERVER span
//   joins the caller's trace and the kernel's trace id becomes an alias of
//   it for every span reported under it on this host. The client's event
//   may come after the server's (the writer, preempted between handing the
//   bytes over and its syscall's exit, reports after the reader): a SERVER
//   span that started a new trace waits, until its exchange ends, for a
//   CLIENT request on the same 4-tuple, and then joins that trace the same
//   way (its parent set, its trace id an alias of the caller's).
// - CLIENT span: a request that passes through a traceparent this process
//   received is the child of the SERVER span that received it (proxies);
//   else the SERVER span that the same thread of the same process is serving
//   right now (thread-per-request servers); else the request's own
//   traceparent (an instrumented caller); else a new trace.
//
// Contexts are decided when a request head is seen, not when the exchange
// ends, because that is when the thread and the connection say who is who.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "agent/connections/conn_tracker.h"
#include "agent/process/process_registry.h"
#include "agent/trace/sampler.h"
#include "agent/trace/span_builder.h"
#include "agent/trace/trace_context.h"

namespace hoptrace {

struct TraceStitcherOptions {
  SpanBuildOptions span;
  SamplerConfig sampler;
  size_t max_outbound = 65536;  // client contexts waiting for their server side
  uint64_t outbound_ttl_ns = 60ull * 1000 * 1000 * 1000;
  size_t max_kernel_contexts = 65536;  // kernel decisions waiting for their request
};

// A context the kernel decided for one request (HT_EV_SERVER_CTX or
// HT_EV_CLIENT_CTX), as the agent keeps it until the request is parsed.
struct KernelContext {
  bool server = true;
  uint64_t ts_ns = 0;  // entry of the syscall with the request's first byte
  ht_ctx_origin origin = HT_CTX_NEW_TRACE;
  uint8_t ctx_flags = 0;  // HT_CTX_F_*
  SpanContextRecord ctx;  // exactly the ids on the wire
  // CLIENT: the probed-call stacks the request was written inside, closest
  // first, when the runtime knows them (Go goroutines); 0: the thread's.
  std::array<uint64_t, 2> stack_ids{};
};

// From the event (bpf/socket_trace.h) to the agent's form.
KernelContext KernelContextFrom(const CtxEvent& ev);

struct TraceStitcherStats {
  uint64_t spans = 0;
  uint64_t server_spans_with_remote_parent = 0;  // from traceparent
  uint64_t server_spans_linked_locally = 0;      // from a traced client on this host
  uint64_t server_spans_linked_late = 0;  // ... whose request event came after the server's
  uint64_t client_spans_with_thread_parent = 0;
  uint64_t invalid_traceparent = 0;
  uint64_t outbound_expired = 0;
  uint64_t dropped_at_shutdown = 0;        // exchanges still open when the agent stopped
  uint64_t sampled_out = 0;                // spans not recorded by the sampler
  uint64_t server_spans_from_kernel = 0;   // ids decided by the kernel
  uint64_t client_spans_from_kernel = 0;   // traceparent injected by the kernel
  uint64_t server_spans_relinked = 0;      // passed-through traceparent, local caller
  uint64_t client_spans_passthrough = 0;   // child of the server span that received it
  uint64_t kernel_contexts_unmatched = 0;  // no request of theirs was parsed
  uint64_t kernel_traces_aliased = 0;      // kernel's new trace joined to a local caller's
  uint64_t server_spans_from_tcp_option = 0;  // parent sent below TLS (TCP option)
};

// Spans other than HTTP exchanges that a thread has open (INTERNAL spans of
// probed functions, agent/trace/internal_spans.h): a request the thread
// writes inside one is its child.
class OpenSpanSource {
 public:
  virtual ~OpenSpanSource() = default;
  // The innermost span open at ts_ns (CLOCK_MONOTONIC) on a stack of pid's
  // probed calls: a thread's (stack_id = tid) or a goroutine's (its g).
  virtual std::optional<SpanContextRecord> InnermostOpen(uint32_t pid, uint64_t stack_id,
                                                         uint64_t ts_ns) = 0;
};

class TraceStitcher : public ExchangeHandler {
 public:
  // Takes the span by rvalue reference: a by-value std::function parameter
  // moves a Span (~100 instructions, and as many to destroy the husk) at
  // each hop of the chain stitcher -> joiner -> pipeline.
  using SpanCallback = std::function<void(Span&&)>;

  TraceStitcher(ProcessRegistry* processes, SpanCallback emit, TraceStitcherOptions options,
                IdGenerator ids = IdGenerator());

  void OnConnectionOpen(const ConnInfo& conn, uint32_t tid) override;
  void OnRequestStart(const ConnInfo& conn, Role role, const RequestStart& request) override;
  void OnExchange(const ConnInfo& conn, Role role, Exchange exchange,
                  const std::optional<Closing>& closing) override;
  void OnConnectionGone(const ConnInfo& conn) override;
  // A kernel decision; comes before the data event that completes its request.
  void OnKernelContext(const ConnId& conn, KernelContext k);

  void set_open_spans(OpenSpanSource* source) { open_spans_ = source; }
  // The SERVER span the thread is serving now (the newest open one), for
  // spans that start inside it.
  std::optional<SpanContextRecord> ServingSpan(uint32_t pid, uint32_t tid) const;
  // The open SERVER span of pid with this id, if its request began before
  // before_ns (a runtime's record of which request a goroutine serves can
  // already name the next one when the agent asks). A scan of every open
  // SERVER span: for the first probed call of a request only.
  std::optional<SpanContextRecord> OpenServerSpan(uint32_t pid, const SpanId& span_id,
                                                  uint64_t before_ns) const;

  // Drops expired client contexts. now: CLOCK_MONOTONIC ns.
  void Tick(uint64_t now_ns);

  const TraceStitcherStats& stats() const { return stats_; }
  size_t open_server_spans() const;
  size_t outbound_waiting() const { return outbound_size_; }
  size_t kernel_contexts_waiting() const { return kernel_size_; }

 private:
  struct Outbound {
    SpanContextRecord ctx;
    uint64_t ts_ns;
  };
  struct ThreadServer {
    SpanContextRecord ctx;
    ConnId conn;
    uint64_t ts_ns = 0;    // the request's first byte
    bool claimed = false;  // an outgoing request of the thread took it as parent
  };
  // The thread's SERVER span an outgoing request of it belongs to, as the
  // kernel picks (bpf/context.bpf.h ht_thread_pick): the oldest one no
  // request claimed yet (an event loop works in arrival order), else the
  // newest. nullptr if the thread serves nothing.
  const ThreadServer* PickThreadServer(uint32_t pid, uint32_t tid);
  // The kernel picked span_id for a request of this thread: claimed here too.
  void MarkClaimed(uint32_t pid, uint32_t tid, const SpanId& span_id);
  // Client connections -> the SERVER span their connecting thread served
  // when they connected, for their first request (an event loop connects in
  // the handler, writes when connected; thread pools connect on the request
  // thread and write on a worker). Bounded by max_outbound.
  std::unordered_map<ConnId, SpanContextRecord, ConnIdHash> bound_at_connect_;

  // Who started the trace of a SERVER span that has no caller (yet).
  enum class NewTrace { kNo, kAgent, kKernel };
  // *new_trace: the context starts a trace, so a traced caller whose request
  // is reported later may still adopt it.
  SpanContextRecord ServerContext(const ConnInfo& conn, const RequestStart& req,
                                  NewTrace* new_trace);
  // A client request (first byte at ts) on the 4-tuple of a SERVER span
  // still waiting for its caller: that span becomes its child. True when one
  // was waiting.
  bool AdoptWaitingServer(const ConnInfo& conn, const SpanContextRecord& caller, uint64_t ts);
  // stacks: where the kernel said which probed-call stacks hold the request.
  SpanContextRecord ClientContext(const ConnInfo& conn, const RequestStart& req,
                                  std::array<uint64_t, 2>* stacks);
  // The kernel's decision for the request whose first byte came with the
  // syscall entered at ts; older undecided ones of the connection are dropped.
  std::optional<KernelContext> TakeKernelContext(const ConnId& conn, bool server, uint64_t ts);
  SpanContextRecord NewRoot();
  // A child of a parent context (remote or local): same trace, new span id,
  // the sampler's decision in the sampled flag.
  SpanContextRecord ChildOf(const TraceId& trace_id, const SpanId& parent_id, uint8_t flags,
                            std::string tracestate);
  // A child's trace flags: the parent's, with the sampler's decision.
  uint8_t ChildFlags(const TraceId& trace_id, uint8_t parent_flags);
  // Spans reported under trace `from` go under `to` (bounded by
  // max_outbound; false when full).
  bool AddAlias(const TraceId& from, const TraceId& to, uint64_t ts);

  ProcessRegistry* processes_;
  OpenSpanSource* open_spans_ = nullptr;
  SpanCallback emit_;
  TraceStitcherOptions options_;
  IdGenerator ids_;
  Sampler sampler_;
  TraceStitcherStats stats_;

  // Contexts of requests in flight, per connection, in request order, by
  // exchange id (a multiplexed protocol's exchanges end in any order).
  struct PendingExchange {
    uint64_t exchange_id;
    SpanContextRecord ctx;
  };
  // A parser drops requests past its pending limit without an exchange:
  // their contexts go once a connection holds more than this.
  static constexpr size_t kMaxPendingPerConnection = 256;
  // A SERVER span that started a new trace, for a caller whose request event
  // comes after the server's (the writer preempted between handing the
  // bytes over and its syscall's exit). Not cleared when the exchange ends:
  // whoever reads it checks that the exchange is still pending.
  struct WaitingServer {
    bool waiting = false;
    uint64_t exchange_id = 0;
    uint32_t tid = 0;
    bool from_kernel = false;  // ids on the wire: flags and tracestate stay
    SpanId span_id;
  };
  struct PendingQueue {
    std::deque<PendingExchange> q;
    WaitingServer waiting;
    bool tuple_registered = false;  // in waiting_servers_ (or the map was full)
  };
  std::unordered_map<ConnId, PendingQueue, ConnIdHash> pending_;
  // (pid << 32 | tid) -> the SERVER spans that thread is serving (request
  // read, response not yet written), oldest first; at most kMaxThreadOpen.
  static constexpr size_t kMaxThreadOpen = 64;
  std::unordered_map<uint64_t, std::deque<ThreadServer>> thread_server_;
  // Connection 4-tuple (client's view) -> client spans awaiting their server.
  // A fixed-size key: a std::string key was a heap allocation per request
  // (every SERVER request looks its caller up).
  struct TupleKey {
    std::array<uint8_t, 2 + 16 + 2 + 16 + 2> bytes{};
    size_t hash = 0;  // of bytes, computed once: a request looks a key up twice
    bool operator==(const TupleKey& o) const { return bytes == o.bytes; }
  };
  struct TupleKeyHash {
    size_t operator()(const TupleKey& k) const;
  };
  static TupleKey TupleKeyOf(const ConnInfo& c, bool client_view);
  std::unordered_map<TupleKey, std::deque<Outbound>, TupleKeyHash> outbound_;
  size_t outbound_size_ = 0;
  // Connection 4-tuple (client's view) -> the server connection whose
  // PendingQueue may hold a SERVER span waiting for a caller reported late.
  // One entry per server connection (made at its first request that
  // started a trace, erased with it), so keep-alive requests look nothing
  // up. Bounded by max_outbound.
  std::unordered_map<TupleKey, ConnId, TupleKeyHash> waiting_servers_;
  // Kernel decisions per connection, in request order.
  std::unordered_map<ConnId, std::deque<KernelContext>, ConnIdHash> kernel_;
  size_t kernel_size_ = 0;
  // (pid, trace id, parent id) of a traceparent a SERVER span of pid received
  // -> that span, while it is open: a request passing the same traceparent
  // on is that span's child.
  std::unordered_map<std::string, SpanContextRecord> received_;
  // Trace ids the kernel made (a new trace) that this agent reports under
  // another: a SERVER span whose caller is traced on this host but sent no
  // traceparent joins the caller's trace, and so must everything the kernel
  // sent on under its own id (same host). Key and value: 16-byte ids.
  struct Alias {
    TraceId to;
    uint64_t ts_ns;
  };
  std::unordered_map<std::string, Alias> trace_alias_;
  void ApplyAlias(SpanContextRecord* ctx) const;
};

}  // namespace hoptrace
