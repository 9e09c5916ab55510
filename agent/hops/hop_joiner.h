// Pairs each CLIENT span with the SERVER span hoptrace saw at the other end
// of the call (the SERVER span's parent is the CLIENT span: linked by the
// TCP 4-tuple on one host, or by a propagated traceparent), and adds what
// only the pair knows to the CLIENT span before it is exported:
//
//   hoptrace.server.time_ns     the callee's own span
//   hoptrace.network.time_ns    caller's wait minus callee's work
//   hoptrace.network.request_ns caller's first write -> callee's first read
//   hoptrace.network.response_ns callee's last write -> caller's last read
//   hoptrace.network.retransmits both ends' retransmissions during the call
//     (and the callee's retransmit/reset span events)
//
// One clock: both spans come from this host's kernel, so the one-way times
// are differences of CLOCK_MONOTONIC readings (request + server + response
// = total exactly).
//
// Which span ends first is a race (the caller's read can return before the
// callee's write does), so a CLIENT span waits up to hold_ns for its SERVER
// span, and a SERVER span's times wait up to server_wait_ns for its CLIENT
// span. SERVER spans are never held. Every finished call also goes to the
// HopTable (edges, recent traces). Bounded: when full, the oldest waiting
// span leaves unpaired (counted).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>

#include "agent/hops/hop_chain.h"
#include "agent/hops/hop_table.h"
#include "agent/hops/network_attributes.h"
#include "agent/trace/span.h"

namespace hoptrace {

struct HopJoinerOptions {
  uint64_t hold_ns = 300'000'000;           // CLIENT span waiting for its SERVER span
  uint64_t server_wait_ns = 2'000'000'000;  // SERVER span's times waiting for the CLIENT span
  size_t max_held = 8192;
  size_t max_servers = 16384;
};

struct HopJoinerStats {
  uint64_t joined = 0;
  uint64_t clients_unpaired = 0;  // no SERVER span within hold_ns
  uint64_t entry_hops = 0;        // SERVER spans whose caller was not traced here
  uint64_t overflow = 0;          // left early because a table was full
};

class HopJoiner {
 public:
  using Sink = std::function<void(Span&&)>;  // by reference: see TraceStitcher::SpanCallback

  // facts may be null (no network probes); table may be null (nobody asks
  // for hops: the agent then keeps no summaries at all).
  HopJoiner(NetworkFacts* facts, HopTable* table, Sink sink, int64_t monotonic_to_unix_ns,
            HopJoinerOptions options = {});

  // A span from the stitcher. now: CLOCK_MONOTONIC ns.
  void OnSpan(Span span, uint64_t now_ns);
  // Lets go what waited long enough.
  void Tick(uint64_t now_ns);
  // Lets everything go (shutdown).
  void Flush(uint64_t now_ns);

  size_t held() const { return held_.size(); }
  const HopJoinerStats& stats() const { return stats_; }

 private:
  struct SpanIdHash {
    size_t operator()(const SpanId& s) const;
  };
  struct Held {
    Span span;
    uint64_t deadline_ns;
  };
  struct ServerSide {
    SpanId span_id;
    uint64_t start_unix_ns, end_unix_ns;
    uint64_t deadline_ns;
    HopSpan summary;  // only with a hop table
  };

  void Join(Span* client, const ServerSide& server);
  void Release(Span client, const ServerSide* server, uint64_t now_ns);
  void ExpireServer(const ServerSide& server, uint64_t now_ns);
  // Lets go whatever is due by due_ns.
  void Drain(uint64_t due_ns, uint64_t now_ns);

  NetworkFacts* facts_;
  HopTable* table_;
  Sink sink_;
  int64_t mono_to_unix_;
  HopJoinerOptions options_;
  // CLIENT spans by their span id; SERVER sides by their parent span id.
  std::unordered_map<SpanId, Held, SpanIdHash> held_;
  std::deque<std::pair<uint64_t, SpanId>> held_order_;  // (deadline, id), oldest first
  std::unordered_map<SpanId, ServerSide, SpanIdHash> servers_;
  std::deque<std::pair<uint64_t, SpanId>> server_order_;
  HopJoinerStats stats_;
};

}  // namespace hoptrace
