// The network half of a span: what TCP knew about a call's connection
// (bpf/net_probe.bpf.c events) turned into span attributes and events.
//
// NetworkFacts keeps, per connection (pid, fd, generation), the last RTT /
// TTL sample and a short log of retransmissions and resets with their
// times. The span builder asks it, once per span, for the facts of the
// span's connection and the incidents inside the span's time window.
//
// Attributes (README "Network attributes"): network.type, and
// hoptrace.tcp.* / hoptrace.network.* where OpenTelemetry has no convention.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/connections/conn_tracker.h"
#include "agent/kernel/event_reader.h"
#include "agent/trace/span_builder.h"
#include "agent/trace/span.h"

namespace hoptrace {

// The initial TTL a sender most likely used: the nearest of the common
// defaults (64: Linux, macOS; 128: Windows; 255: network gear) at or above
// the observed value. 0 for 0 (not observed).
uint8_t LikelyInitialTtl(uint8_t observed);
// Routers crossed: likely initial TTL minus observed; nullopt if unknown.
std::optional<int> InferIpHops(uint8_t observed);

enum class TcpIncidentKind { kRetransmit, kResetReceived, kResetSent };

struct TcpIncident {
  TcpIncidentKind kind = TcpIncidentKind::kRetransmit;
  uint64_t ts_ns = 0;    // CLOCK_MONOTONIC
  bool timeout = false;  // retransmit: the first of a retransmission timeout
  uint8_t state = 0;     // TCP state when it happened
};

// What is known of one connection.
struct ConnNetFacts {
  bool sampled = false;  // an RTT / TTL sample has arrived
  uint32_t srtt_us = 0;
  uint32_t rttvar_us = 0;
  uint32_t min_rtt_us = 0;
  uint32_t total_retrans = 0;  // over the connection's life, as the kernel counts
  uint32_t total_rto = 0;
  uint8_t ttl = 0;  // of the last packet that arrived; 0: none seen
  uint16_t family = 0;
  uint64_t last_event_ns = 0;
  std::deque<TcpIncident> incidents;  // oldest first, bounded
};

struct NetworkFactsOptions {
  size_t max_connections = 65536;  // when full, the oldest eighth goes
  size_t max_incidents_per_connection = 64;
  // Connections with no event for this long are forgotten (spans of a
  // connection are built within moments of its events).
  uint64_t idle_ttl_ns = 600ull * 1000 * 1000 * 1000;
};

struct NetworkFactsStats {
  uint64_t events = 0;
  uint64_t retransmits = 0;
  uint64_t resets = 0;
  uint64_t incidents_dropped = 0;  // beyond max_incidents_per_connection
  uint64_t evicted = 0;            // by max_connections
};

class NetworkFacts {
 public:
  explicit NetworkFacts(NetworkFactsOptions options = {})
      : options_(options), span_conns_(options.max_connections) {}

  void OnTcpEvent(const TcpEvent& ev);
  const ConnNetFacts* Find(const ConnId& id) const;
  // Incidents of connection id with start_ns <= ts <= end_ns.
  std::vector<TcpIncident> IncidentsBetween(const ConnId& id, uint64_t start_ns,
                                            uint64_t end_ns) const;

  // Remembers which connection a SERVER span came from, so that the caller's
  // span can later collect that end's incidents too (HopJoiner). Bounded.
  void NoteSpanConnection(const SpanId& span_id, const ConnId& conn);
  std::optional<ConnId> SpanConnection(const SpanId& span_id) const;

  // Forgets idle connections. now: CLOCK_MONOTONIC ns.
  void Tick(uint64_t now_ns);

  size_t connections() const { return conns_.size(); }
  const NetworkFactsStats& stats() const { return stats_; }

 private:
  // SERVER span id -> its connection, for the newest `capacity` spans (the
  // oldest leaves first). A ring in insertion order and an open-addressing
  // index of it (linear probing, at most half full): nothing is allocated
  // per span once the ring has grown (a node map allocated and freed a node
  // per SERVER span: ~5% of the agent's instructions per request).
  class SpanConnections {
   public:
    explicit SpanConnections(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}
    // Full: the oldest goes first. Then id is added unless it is there.
    void Add(const SpanId& id, const ConnId& conn);
    const ConnId* Find(const SpanId& id) const;

   private:
    static constexpr uint32_t kEmpty = 0;  // index_ holds ring slot + 1
    static constexpr size_t kNotFound = ~size_t{0};
    struct Entry {
      SpanId id;
      ConnId conn;
    };
    size_t Home(const SpanId& id) const;
    size_t IndexOf(const SpanId& id) const;  // position in index_, or npos
    void Insert(uint32_t ring_slot);
    void EraseAt(size_t pos);
    void Grow();

    size_t capacity_;
    std::vector<Entry> ring_;  // grows by doubling up to capacity_
    size_t head_ = 0;          // oldest entry
    size_t size_ = 0;
    std::vector<uint32_t> index_;  // power of two, >= 2 * ring_.size()
    int index_bits_ = 0;
  };

  void EvictOldest();

  NetworkFactsOptions options_;
  std::unordered_map<ConnId, ConnNetFacts, ConnIdHash> conns_;
  uint64_t last_sweep_ns_ = 0;
  SpanConnections span_conns_;
  NetworkFactsStats stats_;
};

// The span event for an incident; endpoint says whose socket it was
// ("client" or "server"). monotonic_to_unix_ns converts its time.
SpanEvent IncidentEvent(const TcpIncident& incident, std::string_view endpoint,
                        int64_t monotonic_to_unix_ns);

// Adds the facts options.network has of conn to span: RTT, TTL and IP hops,
// retransmissions, timeouts and resets inside the span's window (also as
// span events). No facts, nothing added. Called by BuildHttpSpan.
void AddNetworkAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                          Span* span);

}  // namespace hoptrace
