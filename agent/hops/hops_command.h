// `hoptrace hops`: the network half of traces, traceroute-style.
//
//   hoptrace hops --agent HOST:PORT TRACE_ID   the hops of one trace
//   hoptrace hops --agent HOST:PORT            the most recent traces
//   hoptrace hops --agent HOST:PORT --edges    per-edge table, once
//   hoptrace hops --agent HOST:PORT --live     per-edge table, refreshing
//   hoptrace hops --from spans.jsonl [TRACE_ID | --edges]
//
// --agent is the --metrics-address of a running `hoptrace run` (its
// /api/hops, /api/edges, /api/traces endpoints); --from reads the JSON lines
// of `hoptrace run --output jsonl` instead.
#pragma once

#include <atomic>
#include <string>

namespace hoptrace {

struct HopsOptions {
  std::string trace_id;   // empty: recent traces (or edges, with edges/live)
  std::string agent;      // host:port
  std::string from_file;  // JSON lines
  bool edges = false;
  bool live = false;
  bool json = false;        // print the JSON the table is made from
  double interval_s = 1.0;  // live refresh
  int count = 0;            // live: stop after this many tables (0: until Ctrl-C)
};

// Returns the process exit code; errors are printed to stderr.
int RunHops(const HopsOptions& options, const std::atomic<bool>* stop);

}  // namespace hoptrace
