// The agent's memory of hops, in bounded space, for `hoptrace hops`:
//
// - edges: per (caller service, callee) the calls of the last one to two
//   windows (default 10 s each): rate, and percentiles of total, server and
//   network time and of RTT from fixed-size histograms, plus the last IP
//   hop count; at most max_edges, the least recently seen goes first;
// - recent traces: the span summaries of the last max_traces traces (at most
//   max_spans_per_trace each), to answer "the hops of trace X".
//
// Fed by HopJoiner on the capture thread; read by the metrics endpoint's
// thread: every method locks.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/hops/hop_chain.h"
#include "agent/hops/latency_histogram.h"

namespace hoptrace {

struct HopTableOptions {
  size_t max_edges = 256;
  uint64_t window_ns = 10ull * 1000 * 1000 * 1000;
  size_t max_traces = 2048;
  size_t max_spans_per_trace = 256;
};

struct HopTableStats {
  uint64_t hops = 0;
  uint64_t edges_evicted = 0;
  uint64_t traces_evicted = 0;
  uint64_t spans_dropped = 0;  // beyond max_spans_per_trace
};

struct EdgePercentiles {
  uint64_t count = 0;
  uint64_t p50 = 0, p99 = 0;
};

// One edge as reported.
struct EdgeReport {
  std::string caller, callee, callee_address;
  uint64_t requests_total = 0;  // since the agent started
  uint64_t requests = 0;        // in the reported window
  double window_s = 0;
  double rate_per_s = 0;
  EdgePercentiles total, server, network, srtt;  // ns, ns, ns, us
  std::optional<int64_t> ip_hops;                // last seen
  uint64_t retransmits = 0, errors = 0;          // in the window
};

nlohmann::json EdgeToJson(const EdgeReport& e);
EdgeReport EdgeFromJson(const nlohmann::json& j);

class HopTable {
 public:
  explicit HopTable(HopTableOptions options = {}) : options_(options) {}

  // A span as it leaves for the exporters.
  void AddSpan(const HopSpan& span);
  // One finished call. now: CLOCK_MONOTONIC ns (windows).
  void AddHop(const Hop& hop, uint64_t now_ns);

  // The hops of a trace (empty if unknown or evicted).
  std::vector<Hop> HopsOf(const std::string& trace_id) const;
  std::vector<HopSpan> SpansOf(const std::string& trace_id) const;
  // The most recent traces, newest first: {trace_id, spans, root, start, duration}.
  nlohmann::json RecentTraces(size_t limit) const;
  // Edges, busiest first.
  std::vector<EdgeReport> Edges(uint64_t now_ns) const;

  HopTableStats stats() const;

 private:
  struct Window {
    uint64_t count = 0, retransmits = 0, errors = 0;
    LatencyHistogram total, server, network, srtt;
    void Clear() { *this = Window(); }
  };
  struct Edge {
    std::string caller, callee, callee_address;
    uint64_t requests_total = 0;
    uint64_t first_seen_ns = 0, last_seen_ns = 0;
    uint64_t window_start_ns = 0;
    bool have_prev = false;
    Window cur, prev;
    std::optional<int64_t> ip_hops;
  };
  struct Trace {
    std::vector<HopSpan> spans;
    std::list<std::string>::iterator order;
  };

  void Rotate(Edge& e, uint64_t now_ns) const;
  EdgeReport Report(const Edge& e, uint64_t now_ns) const;

  HopTableOptions options_;
  mutable std::mutex mu_;
  // Windows rotate on reads too.
  mutable std::unordered_map<std::string, Edge> edges_;  // key: caller + '\0' + callee
  std::unordered_map<std::string, Trace> traces_;
  std::list<std::string> trace_order_;  // oldest first
  HopTableStats stats_;
};

}  // namespace hoptrace
