#include "agent/hops/hops_api.h"

#include <charconv>

namespace hoptrace {

using nlohmann::json;

std::optional<std::string> QueryParam(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      return std::string(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

void RegisterHopRoutes(MetricsServer* server, const HopTable* table,
                       std::function<uint64_t()> now) {
  auto reply = [](int status, const json& body) {
    return MetricsServer::Reply{status, "application/json", body.dump() + "\n"};
  };
  server->Route("/api/hops", [table, reply](std::string_view query) {
    auto trace = QueryParam(query, "trace");
    if (!trace || trace->size() != 32) {
      return reply(400, {{"error", "give a trace id: /api/hops?trace=<32 hex digits>"}});
    }
    std::vector<HopSpan> spans = table->SpansOf(*trace);
    if (spans.empty()) {
      return reply(404, {{"error", "trace " + *trace +
                                       " is not among the agent's recent traces (unknown, "
                                       "evicted, or its spans not finished yet)"}});
    }
    json hops = json::array();
    for (const Hop& h : BuildHops(spans)) hops.push_back(HopToJson(h));
    return reply(200, {{"trace_id", *trace}, {"spans", spans.size()}, {"hops", std::move(hops)}});
  });
  server->Route("/api/edges", [table, now, reply](std::string_view) {
    json edges = json::array();
    for (const EdgeReport& e : table->Edges(now())) edges.push_back(EdgeToJson(e));
    return reply(200, {{"edges", std::move(edges)}});
  });
  server->Route("/api/traces", [table, reply](std::string_view query) {
    size_t limit = 20;
    if (auto l = QueryParam(query, "limit")) {
      size_t n = 0;
      auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), n);
      if (ec == std::errc() && p == l->data() + l->size() && n > 0)
        limit = std::min<size_t>(n, 1000);
    }
    return reply(200, {{"traces", table->RecentTraces(limit)}});
  });
}

}  // namespace hoptrace
