#include "agent/hops/hop_table.h"

#include <algorithm>

namespace hoptrace {
namespace {

using nlohmann::json;

json PercentilesToJson(const EdgePercentiles& p) {
  if (p.count == 0) return nullptr;
  return {{"count", p.count}, {"p50", p.p50}, {"p99", p.p99}};
}

EdgePercentiles PercentilesFromJson(const json& j) {
  EdgePercentiles p;
  if (!j.is_object()) return p;
  p.count = j.value("count", uint64_t{0});
  p.p50 = j.value("p50", uint64_t{0});
  p.p99 = j.value("p99", uint64_t{0});
  return p;
}

EdgePercentiles Percentiles(const LatencyHistogram& h) {
  return EdgePercentiles{h.count(), h.Quantile(0.50), h.Quantile(0.99)};
}

}  // namespace

json EdgeToJson(const EdgeReport& e) {
  return {{"caller", e.caller},
          {"callee", e.callee},
          {"callee_address", e.callee_address},
          {"requests_total", e.requests_total},
          {"requests", e.requests},
          {"window_s", e.window_s},
          {"rate_per_s", e.rate_per_s},
          {"total_ns", PercentilesToJson(e.total)},
          {"server_ns", PercentilesToJson(e.server)},
          {"network_ns", PercentilesToJson(e.network)},
          {"srtt_us", PercentilesToJson(e.srtt)},
          {"ip_hops", e.ip_hops ? json(*e.ip_hops) : json(nullptr)},
          {"retransmits", e.retransmits},
          {"errors", e.errors}};
}

EdgeReport EdgeFromJson(const json& j) {
  EdgeReport e;
  e.caller = j.value("caller", "");
  e.callee = j.value("callee", "");
  e.callee_address = j.value("callee_address", "");
  e.requests_total = j.value("requests_total", uint64_t{0});
  e.requests = j.value("requests", uint64_t{0});
  e.window_s = j.value("window_s", 0.0);
  e.rate_per_s = j.value("rate_per_s", 0.0);
  if (j.contains("total_ns")) e.total = PercentilesFromJson(j["total_ns"]);
  if (j.contains("server_ns")) e.server = PercentilesFromJson(j["server_ns"]);
  if (j.contains("network_ns")) e.network = PercentilesFromJson(j["network_ns"]);
  if (j.contains("srtt_us")) e.srtt = PercentilesFromJson(j["srtt_us"]);
  if (j.contains("ip_hops") && j["ip_hops"].is_number()) e.ip_hops = j["ip_hops"].get<int64_t>();
  e.retransmits = j.value("retransmits", uint64_t{0});
  e.errors = j.value("errors", uint64_t{0});
  return e;
}

void HopTable::AddSpan(const HopSpan& span) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = traces_.find(span.trace_id);
  if (it == traces_.end()) {
    if (traces_.size() >= options_.max_traces && !trace_order_.empty()) {
      traces_.erase(trace_order_.front());
      trace_order_.pop_front();
      ++stats_.traces_evicted;
    }
    trace_order_.push_back(span.trace_id);
    it = traces_.emplace(span.trace_id, Trace{{}, std::prev(trace_order_.end())}).first;
  } else {
    // Most recently added last: eviction takes the trace heard of longest ago.
    trace_order_.splice(trace_order_.end(), trace_order_, it->second.order);
  }
  if (it->second.spans.size() >= options_.max_spans_per_trace) {
    ++stats_.spans_dropped;
    return;
  }
  it->second.spans.push_back(span);
}

void HopTable::Rotate(Edge& e, uint64_t now_ns) const {
  if (now_ns < e.window_start_ns || now_ns - e.window_start_ns < options_.window_ns) return;
  const uint64_t windows = (now_ns - e.window_start_ns) / options_.window_ns;
  if (windows == 1) {
    e.prev = std::move(e.cur);
  } else {
    e.prev.Clear();  // the last full window saw nothing
  }
  e.have_prev = true;
  e.cur.Clear();
  e.window_start_ns += windows * options_.window_ns;
}

void HopTable::AddHop(const Hop& hop, uint64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.hops;
  std::string key = hop.caller + '\0' + hop.callee;
  auto it = edges_.find(key);
  if (it == edges_.end()) {
    if (edges_.size() >= options_.max_edges) {
      auto oldest =
          std::min_element(edges_.begin(), edges_.end(), [](const auto& a, const auto& b) {
            return a.second.last_seen_ns < b.second.last_seen_ns;
          });
      edges_.erase(oldest);
      ++stats_.edges_evicted;
    }
    Edge e;
    e.caller = hop.caller;
    e.callee = hop.callee;
    e.first_seen_ns = e.window_start_ns = now_ns;
    it = edges_.emplace(std::move(key), std::move(e)).first;
  }
  Edge& e = it->second;
  Rotate(e, now_ns);
  e.last_seen_ns = now_ns;
  if (!hop.callee_address.empty()) e.callee_address = hop.callee_address;
  ++e.requests_total;
  Window& w = e.cur;
  ++w.count;
  w.retransmits += static_cast<uint64_t>(std::max<int64_t>(0, hop.retransmits));
  w.errors += hop.error ? 1 : 0;
  if (hop.total_ns) w.total.Record(static_cast<uint64_t>(std::max<int64_t>(0, *hop.total_ns)));
  if (hop.server_ns) w.server.Record(static_cast<uint64_t>(std::max<int64_t>(0, *hop.server_ns)));
  if (hop.network_ns)
    w.network.Record(static_cast<uint64_t>(std::max<int64_t>(0, *hop.network_ns)));
  // RTT goes in as ns like the rest (the histogram's first bucket ends at 1.024 us).
  if (hop.srtt_us) w.srtt.Record(static_cast<uint64_t>(std::max<int64_t>(0, *hop.srtt_us)) * 1000);
  if (hop.ip_hops) e.ip_hops = hop.ip_hops;
}

EdgeReport HopTable::Report(const Edge& e, uint64_t now_ns) const {
  EdgeReport r;
  r.caller = e.caller;
  r.callee = e.callee;
  r.callee_address = e.callee_address;
  r.requests_total = e.requests_total;
  Window merged = e.cur;
  if (e.have_prev) {
    merged.count += e.prev.count;
    merged.retransmits += e.prev.retransmits;
    merged.errors += e.prev.errors;
    merged.total.Merge(e.prev.total);
    merged.server.Merge(e.prev.server);
    merged.network.Merge(e.prev.network);
    merged.srtt.Merge(e.prev.srtt);
  }
  uint64_t span = now_ns - std::min(now_ns, e.window_start_ns);
  if (e.have_prev) span += options_.window_ns;
  span = std::min(span, now_ns - std::min(now_ns, e.first_seen_ns));
  r.window_s = std::max(1.0, static_cast<double>(span) / 1e9);
  r.requests = merged.count;
  r.rate_per_s = static_cast<double>(merged.count) / r.window_s;
  r.total = Percentiles(merged.total);
  r.server = Percentiles(merged.server);
  r.network = Percentiles(merged.network);
  r.srtt = Percentiles(merged.srtt);
  r.srtt.p50 /= 1000;
  r.srtt.p99 /= 1000;
  r.ip_hops = e.ip_hops;
  r.retransmits = merged.retransmits;
  r.errors = merged.errors;
  return r;
}

std::vector<EdgeReport> HopTable::Edges(uint64_t now_ns) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<EdgeReport> out;
  for (auto& [key, e] : edges_) {
    Rotate(e, now_ns);
    out.push_back(Report(e, now_ns));
  }
  std::sort(out.begin(), out.end(), [](const EdgeReport& a, const EdgeReport& b) {
    if (a.requests != b.requests) return a.requests > b.requests;
    return std::tie(a.caller, a.callee) < std::tie(b.caller, b.callee);
  });
  return out;
}

std::vector<HopSpan> HopTable::SpansOf(const std::string& trace_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = traces_.find(trace_id);
  return it == traces_.end() ? std::vector<HopSpan>{} : it->second.spans;
}

std::vector<Hop> HopTable::HopsOf(const std::string& trace_id) const {
  return BuildHops(SpansOf(trace_id));
}

nlohmann::json HopTable::RecentTraces(size_t limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  json out = json::array();
  for (auto it = trace_order_.rbegin(); it != trace_order_.rend() && out.size() < limit; ++it) {
    const Trace& t = traces_.at(*it);
    uint64_t start = ~uint64_t{0}, end = 0;
    const HopSpan* root = nullptr;
    for (const HopSpan& s : t.spans) {
      start = std::min(start, s.start_unix_ns);
      end = std::max(end, s.end_unix_ns);
      if (root == nullptr || s.start_unix_ns < root->start_unix_ns) root = &s;
    }
    json j = {{"trace_id", *it}, {"spans", t.spans.size()}};
    if (root != nullptr) {
      j["root"] = root->service + " " + std::string(SpanKindName(root->kind)) + " " + root->method +
                  " " + root->target;
      j["start_time_unix_nano"] = start;
      j["duration_ns"] = end > start ? end - start : 0;
    }
    out.push_back(std::move(j));
  }
  return out;
}

HopTableStats HopTable::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace hoptrace
