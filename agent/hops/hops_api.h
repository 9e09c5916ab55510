// The agent's JSON endpoints for `hoptrace hops`, served next to /metrics
// (hoptrace run --metrics-address):
//
//   GET /api/hops?trace=ID   the hops of one trace: {"trace_id", "spans", "hops": [...]}
//   GET /api/edges           per-edge aggregates: {"edges": [...]}
//   GET /api/traces?limit=N  the most recent traces: {"traces": [...]}
//
// Field names as in HopToJson / EdgeToJson (agent/hop_chain.h, hop_table.h).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "agent/hops/hop_table.h"
#include "agent/cli/metrics_server.h"

namespace hoptrace {

// The value of key in a URL query ("a=1&trace=ab"), percent-decoding not
// needed for ours (hex ids, numbers).
std::optional<std::string> QueryParam(std::string_view query, std::string_view key);

// now: CLOCK_MONOTONIC ns (edge windows).
void RegisterHopRoutes(MetricsServer* server, const HopTable* table, std::function<uint64_t()> now);

}  // namespace hoptrace
