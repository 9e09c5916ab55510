// A trace as a chain of hops, traceroute-style: each call from one service
// to the next, with how long the caller waited (total), how much of that
// the callee worked (server) and the rest, the network in between.
//
// A hop is a CLIENT span and, when hoptrace saw the other end, the SERVER
// span whose parent it is; or a SERVER span called by something hoptrace
// did not trace (curl, a browser), the entry of the trace. Hops are built
// from spans alone, so the agent (GET /api/hops) and `hoptrace hops --from
// FILE` (JSON lines of `hoptrace run --output jsonl`) share this code.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/trace/span.h"

namespace hoptrace {

// What hops need of one span, read from its attributes.
struct HopSpan {
  std::string trace_id, span_id, parent_span_id;  // hex; parent "" for a root
  SpanKind kind = SpanKind::kInternal;
  std::string service;
  std::string method, target;  // target: url.path (SERVER) or url.full (CLIENT)
  int64_t status_code = 0;
  bool error = false;
  uint64_t start_unix_ns = 0, end_unix_ns = 0;
  std::string local_address, peer_address;  // "ip:port" of the socket's ends; "" unknown
  std::string server_address;               // CLIENT: server.address[:port] it called
  // Network facts (absent without network probes).
  std::optional<int64_t> srtt_us, rttvar_us, ip_hops;
  int64_t retransmits = 0, timeouts = 0, resets = 0;
  // CLIENT spans paired with their SERVER span by the agent (same host).
  std::optional<int64_t> network_ns, request_ns, response_ns, server_ns, network_retransmits;

  uint64_t duration_ns() const {
    return end_unix_ns > start_unix_ns ? end_unix_ns - start_unix_ns : 0;
  }
};

HopSpan SummarizeSpan(const Span& span);

struct Hop {
  int depth = 0;               // 0: entry of the trace; +1 per call deeper
  std::string caller;          // service, or the address of an untraced caller
  std::string caller_address;  // "ip:port" of the caller's end
  std::string callee;          // service, or server.address of an untraced callee
  std::string callee_address;  // "ip:port" the caller reached
  std::string method, target;
  int64_t status_code = 0;
  bool error = false;
  uint64_t start_unix_ns = 0;
  std::optional<int64_t> total_ns;     // the caller's wait (CLIENT span)
  std::optional<int64_t> server_ns;    // the callee's work (SERVER span)
  std::optional<int64_t> network_ns;   // total - server
  std::optional<int64_t> request_ns;   // caller's send -> callee's read (same host only)
  std::optional<int64_t> response_ns;  // callee's last write -> caller's read (same host only)
  std::optional<int64_t> srtt_us, rttvar_us, ip_hops;
  int64_t retransmits = 0, timeouts = 0, resets = 0;
  std::string client_span_id, server_span_id;
};

// One CLIENT span and its SERVER span (null when hoptrace did not see it).
Hop MakeCallHop(const HopSpan& client, const HopSpan* server);
// A SERVER span whose caller hoptrace did not trace.
Hop MakeEntryHop(const HopSpan& server);

// The hops of one trace's spans, in call order (depth first, by start time).
std::vector<Hop> BuildHops(const std::vector<HopSpan>& spans);

nlohmann::json HopToJson(const Hop& hop);
Hop HopFromJson(const nlohmann::json& j);

// Reads a span as `hoptrace run --output jsonl` writes it (SpanToJson).
// Returns nullopt for a line that is not such a span.
std::optional<Span> SpanFromJson(const nlohmann::json& j);

}  // namespace hoptrace
