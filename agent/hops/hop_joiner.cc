#include "agent/hops/hop_joiner.h"

#include <algorithm>
#include <cstring>

namespace hoptrace {
namespace {

int64_t Diff(uint64_t later, uint64_t earlier) {
  return later > earlier ? static_cast<int64_t>(later - earlier) : 0;
}

}  // namespace

size_t HopJoiner::SpanIdHash::operator()(const SpanId& s) const {
  uint64_t v;
  memcpy(&v, s.bytes.data(), sizeof(v));
  return std::hash<uint64_t>()(v);
}

HopJoiner::HopJoiner(NetworkFacts* facts, HopTable* table, Sink sink, int64_t monotonic_to_unix_ns,
                     HopJoinerOptions options)
    : facts_(facts),
      table_(table),
      sink_(std::move(sink)),
      mono_to_unix_(monotonic_to_unix_ns),
      options_(options) {}

void HopJoiner::OnSpan(Span span, uint64_t now_ns) {
  Tick(now_ns);
  if (span.kind == SpanKind::kServer) {
    ServerSide side{span.span_id,
                    span.start_unix_nano,
                    span.end_unix_nano,
                    now_ns + options_.server_wait_ns,
                    {}};
    const SpanId parent = span.parent_span_id;
    if (table_) {
      side.summary = SummarizeSpan(span);
      table_->AddSpan(side.summary);
    }
    sink_(std::move(span));
    if (!parent.IsValid()) {
      ExpireServer(side, now_ns);  // a root: nobody traced called it
      return;
    }
    if (auto h = held_.find(parent); h != held_.end()) {
      Span client = std::move(h->second.span);
      held_.erase(h);
      Release(std::move(client), &side, now_ns);
      return;
    }
    if (servers_.size() >= options_.max_servers) {
      while (!server_order_.empty()) {
        auto [deadline, id] = server_order_.front();
        server_order_.pop_front();
        auto it = servers_.find(id);
        if (it == servers_.end() || it->second.deadline_ns != deadline) continue;
        ++stats_.overflow;
        ServerSide old = std::move(it->second);
        servers_.erase(it);
        ExpireServer(old, now_ns);
        break;
      }
    }
    server_order_.emplace_back(side.deadline_ns, parent);
    servers_[parent] = std::move(side);
    return;
  }
  if (span.kind != SpanKind::kClient) {
    if (table_) table_->AddSpan(SummarizeSpan(span));
    sink_(std::move(span));
    return;
  }
  if (auto s = servers_.find(span.span_id); s != servers_.end()) {
    ServerSide side = std::move(s->second);
    servers_.erase(s);
    Release(std::move(span), &side, now_ns);
    return;
  }
  if (held_.size() >= options_.max_held) {
    while (!held_order_.empty()) {
      auto [deadline, id] = held_order_.front();
      held_order_.pop_front();
      auto it = held_.find(id);
      if (it == held_.end() || it->second.deadline_ns != deadline) continue;
      ++stats_.overflow;
      Span old = std::move(it->second.span);
      held_.erase(it);
      Release(std::move(old), nullptr, now_ns);
      break;
    }
  }
  const uint64_t deadline = now_ns + options_.hold_ns;
  held_order_.emplace_back(deadline, span.span_id);
  SpanId id = span.span_id;
  held_.emplace(id, Held{std::move(span), deadline});
}

void HopJoiner::Join(Span* client, const ServerSide& server) {
  const int64_t total = Diff(client->end_unix_nano, client->start_unix_nano);
  const int64_t server_ns = Diff(server.end_unix_ns, server.start_unix_ns);
  auto& a = client->attributes;
  AddAttribute(a, "hoptrace.server.time_ns", server_ns);
  const int64_t network = std::max<int64_t>(0, total - server_ns);
  // The two ways always add up to the network time. The callee's last
  // write can return after the caller's read already has its bytes (by a
  // few hundred ns): the response way is then 0, and the request way what
  // remains, rather than a sum that is off by that overlap.
  const int64_t request =
      std::min(network, Diff(server.start_unix_ns, client->start_unix_nano));
  AddAttribute(a, "hoptrace.network.time_ns", network);
  AddAttribute(a, "hoptrace.network.request_ns", request);
  AddAttribute(a, "hoptrace.network.response_ns", network - request);
  if (facts_ == nullptr) return;
  // The callee's socket retransmits what the caller waits for: those belong
  // to this call too, inside the caller's window.
  int64_t retransmits = 0;
  if (const AttrValue* own = FindAttribute(a, "hoptrace.tcp.retransmits")) {
    if (const auto* n = std::get_if<int64_t>(own)) retransmits = *n;
  } else {
    return;  // the caller's connection has no facts: say nothing about the network
  }
  if (auto conn = facts_->SpanConnection(server.span_id)) {
    const uint64_t start =
        static_cast<uint64_t>(static_cast<int64_t>(client->start_unix_nano) - mono_to_unix_);
    const uint64_t end =
        static_cast<uint64_t>(static_cast<int64_t>(client->end_unix_nano) - mono_to_unix_);
    for (const TcpIncident& i : facts_->IncidentsBetween(*conn, start, end)) {
      if (i.kind == TcpIncidentKind::kRetransmit) ++retransmits;
      client->events.push_back(IncidentEvent(i, "server", mono_to_unix_));
    }
    std::sort(
        client->events.begin(), client->events.end(),
        [](const SpanEvent& x, const SpanEvent& y) { return x.time_unix_nano < y.time_unix_nano; });
  }
  AddAttribute(a, "hoptrace.network.retransmits", retransmits);
}

void HopJoiner::Release(Span client, const ServerSide* server, uint64_t now_ns) {
  if (server != nullptr) {
    Join(&client, *server);
    ++stats_.joined;
  } else {
    ++stats_.clients_unpaired;
  }
  if (table_) {
    HopSpan summary = SummarizeSpan(client);
    table_->AddSpan(summary);
    table_->AddHop(MakeCallHop(summary, server ? &server->summary : nullptr), now_ns);
  }
  sink_(std::move(client));
}

void HopJoiner::ExpireServer(const ServerSide& server, uint64_t now_ns) {
  ++stats_.entry_hops;
  if (table_) table_->AddHop(MakeEntryHop(server.summary), now_ns);
}

void HopJoiner::Tick(uint64_t now_ns) { Drain(now_ns, now_ns); }

void HopJoiner::Flush(uint64_t now_ns) { Drain(~uint64_t{0}, now_ns); }

void HopJoiner::Drain(uint64_t due_ns, uint64_t now_ns) {
  while (!held_order_.empty() && held_order_.front().first <= due_ns) {
    auto [deadline, id] = held_order_.front();
    held_order_.pop_front();
    auto it = held_.find(id);
    if (it == held_.end() || it->second.deadline_ns != deadline) continue;
    Span span = std::move(it->second.span);
    held_.erase(it);
    Release(std::move(span), nullptr, now_ns);
  }
  while (!server_order_.empty() && server_order_.front().first <= due_ns) {
    auto [deadline, id] = server_order_.front();
    server_order_.pop_front();
    auto it = servers_.find(id);
    if (it == servers_.end() || it->second.deadline_ns != deadline) continue;
    ServerSide side = std::move(it->second);
    servers_.erase(it);
    ExpireServer(side, now_ns);
  }
}

}  // namespace hoptrace
