// Decides the trace context of every HTTP span and emits the spans.
//
// - SERVER span: the request's valid W3C traceparent (trace id, parent =
//   its parent-id, flags, tracestate); else, when this host also traced the
//   CLIENT side of the same TCP connection, that client span as parent;
//   else a new trace. Invalid traceparents start a new trace (W3C 3.2.2.x).
// - CLIENT span: the SERVER span that the same thread of the same process
//   is serving right now (thread-per-request servers); else the request's
//   own traceparent (an instrumented caller); else a new trace.
//
// Contexts are decided when a request head is seen, not when the exchange
// ends, because that is when the thread and the connection say who is who.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>

#include "agent/conn_tracker.h"
#include "agent/http_span_builder.h"
#include "agent/process_registry.h"
#include "agent/sampler.h"
#include "agent/trace_context.h"

namespace hoptrace {

struct TraceStitcherOptions {
  SpanBuildOptions span;
  SamplerConfig sampler;
  size_t max_outbound = 65536;  // client contexts waiting for their server side
  uint64_t outbound_ttl_ns = 60ull * 1000 * 1000 * 1000;
};

struct TraceStitcherStats {
  uint64_t spans = 0;
  uint64_t server_spans_with_remote_parent = 0;  // from traceparent
  uint64_t server_spans_linked_locally = 0;      // from a traced client on this host
  uint64_t client_spans_with_thread_parent = 0;
  uint64_t invalid_traceparent = 0;
  uint64_t outbound_expired = 0;
  uint64_t dropped_at_shutdown = 0;  // exchanges still open when the agent stopped
  uint64_t sampled_out = 0;          // spans not recorded by the sampler
};

class TraceStitcher : public ExchangeHandler {
 public:
  using SpanCallback = std::function<void(Span)>;

  TraceStitcher(ProcessRegistry* processes, SpanCallback emit, TraceStitcherOptions options,
                IdGenerator ids = IdGenerator());

  void OnRequestHead(const ConnInfo& conn, http1::Role role,
                     const http1::Message& request) override;
  void OnExchange(const ConnInfo& conn, http1::Role role, http1::Record record,
                  const std::optional<Closing>& closing) override;
  void OnConnectionGone(const ConnInfo& conn) override;

  // Drops expired client contexts. now: CLOCK_MONOTONIC ns.
  void Tick(uint64_t now_ns);

  const TraceStitcherStats& stats() const { return stats_; }
  size_t open_server_spans() const { return thread_server_.size(); }
  size_t outbound_waiting() const { return outbound_size_; }

 private:
  struct Outbound {
    SpanContextRecord ctx;
    uint64_t ts_ns;
  };
  struct ThreadServer {
    SpanContextRecord ctx;
    ConnId conn;
  };

  SpanContextRecord ServerContext(const ConnInfo& conn, const http1::Message& req);
  SpanContextRecord ClientContext(const ConnInfo& conn, const http1::Message& req);
  SpanContextRecord NewRoot();
  // A child of a parent context (remote or local): same trace, new span id,
  // the sampler's decision in the sampled flag.
  SpanContextRecord ChildOf(const TraceId& trace_id, const SpanId& parent_id, uint8_t flags,
                            std::string tracestate);

  ProcessRegistry* processes_;
  SpanCallback emit_;
  TraceStitcherOptions options_;
  IdGenerator ids_;
  Sampler sampler_;
  TraceStitcherStats stats_;

  // Contexts of requests in flight, per connection, in request order.
  std::unordered_map<ConnId, std::deque<SpanContextRecord>, ConnIdHash> pending_;
  // (pid << 32 | tid) -> the server span that thread is serving.
  std::unordered_map<uint64_t, ThreadServer> thread_server_;
  // Connection 4-tuple (client's view) -> client spans awaiting their server.
  std::unordered_map<std::string, std::deque<Outbound>> outbound_;
  size_t outbound_size_ = 0;
};

}  // namespace hoptrace
