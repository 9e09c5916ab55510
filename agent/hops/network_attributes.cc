#include "agent/hops/network_attributes.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

namespace hoptrace {
namespace {

// include/net/tcp_states.h
std::string_view TcpStateName(uint8_t state) {
  static constexpr std::array<std::string_view, 13> kNames = {
      "UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT",
      "CLOSE",   "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV"};
  return state < kNames.size() ? kNames[state] : "UNKNOWN";
}

bool IsV4Mapped(const std::array<uint8_t, 16>& addr) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(addr.data(), kMapped, sizeof(kMapped)) == 0;
}

}  // namespace

uint8_t LikelyInitialTtl(uint8_t observed) {
  if (observed == 0) return 0;
  for (uint8_t initial : {uint8_t{64}, uint8_t{128}, uint8_t{255}}) {
    if (observed <= initial) return initial;
  }
  return 255;
}

std::optional<int> InferIpHops(uint8_t observed) {
  if (observed == 0) return std::nullopt;
  return LikelyInitialTtl(observed) - observed;
}

size_t NetworkFacts::SpanConnections::Home(const SpanId& id) const {
  uint64_t v;
  memcpy(&v, id.bytes.data(), sizeof(v));
  // Fibonacci hashing: ids made in tests are not random.
  return static_cast<size_t>((v * 0x9e3779b97f4a7c15ull) >> (64 - index_bits_));
}

size_t NetworkFacts::SpanConnections::IndexOf(const SpanId& id) const {
  if (index_.empty()) return kNotFound;
  const size_t mask = index_.size() - 1;
  for (size_t p = Home(id);; p = (p + 1) & mask) {
    if (index_[p] == kEmpty) return kNotFound;
    if (ring_[index_[p] - 1].id == id) return p;
  }
}

const ConnId* NetworkFacts::SpanConnections::Find(const SpanId& id) const {
  const size_t p = IndexOf(id);
  return p == kNotFound ? nullptr : &ring_[index_[p] - 1].conn;
}

void NetworkFacts::SpanConnections::Insert(uint32_t ring_slot) {
  const size_t mask = index_.size() - 1;
  size_t p = Home(ring_[ring_slot].id);
  while (index_[p] != kEmpty) p = (p + 1) & mask;
  index_[p] = ring_slot + 1;
}

// Backward-shift deletion: later entries of the probe run move up so that
// no lookup stops early at the hole.
void NetworkFacts::SpanConnections::EraseAt(size_t pos) {
  const size_t mask = index_.size() - 1;
  size_t hole = pos;
  for (size_t p = (pos + 1) & mask; index_[p] != kEmpty; p = (p + 1) & mask) {
    const size_t home = Home(ring_[index_[p] - 1].id);
    // The entry at p may fill the hole unless its home lies cyclically in (hole, p].
    const bool home_after_hole = hole <= p ? (home > hole && home <= p) : (home > hole || home <= p);
    if (!home_after_hole) {
      index_[hole] = index_[p];
      hole = p;
    }
  }
  index_[hole] = kEmpty;
}

void NetworkFacts::SpanConnections::Grow() {
  const size_t n = std::min(capacity_, std::max<size_t>(64, 2 * ring_.size()));
  std::vector<Entry> ring(n);
  for (size_t i = 0; i < size_; ++i) ring[i] = ring_[(head_ + i) % ring_.size()];
  ring_ = std::move(ring);
  head_ = 0;
  index_bits_ = 1;
  while ((size_t{1} << index_bits_) < 2 * n) ++index_bits_;
  index_.assign(size_t{1} << index_bits_, kEmpty);
  for (size_t i = 0; i < size_; ++i) Insert(static_cast<uint32_t>(i));
}

void NetworkFacts::SpanConnections::Add(const SpanId& id, const ConnId& conn) {
  if (size_ >= capacity_) {
    EraseAt(IndexOf(ring_[head_].id));
    head_ = (head_ + 1) % ring_.size();
    --size_;
  }
  if (IndexOf(id) != kNotFound) return;
  if (size_ == ring_.size()) Grow();
  const size_t slot = (head_ + size_) % ring_.size();
  ring_[slot] = Entry{id, conn};
  ++size_;
  Insert(static_cast<uint32_t>(slot));
}

void NetworkFacts::OnTcpEvent(const TcpEvent& ev) {
  const ht_event_header& h = *ev.hdr;
  const ht_tcp_event& t = *ev.tcp;
  ++stats_.events;
  const ConnId id{h.pid, h.fd, h.conn_gen};
  auto it = conns_.find(id);
  if (it == conns_.end()) {
    if (conns_.size() >= options_.max_connections) EvictOldest();
    it = conns_.emplace(id, ConnNetFacts{}).first;
  }
  ConnNetFacts& f = it->second;
  f.sampled = true;
  f.srtt_us = t.srtt_us;
  f.rttvar_us = t.rttvar_us;
  f.min_rtt_us = t.min_rtt_us;
  f.total_retrans = t.total_retrans;
  f.total_rto = t.total_rto;
  if (t.ttl != 0) f.ttl = t.ttl;
  f.family = t.family;
  f.last_event_ns = std::max<uint64_t>(f.last_event_ns, h.ts_exit_ns);

  TcpIncident incident;
  incident.ts_ns = h.ts_exit_ns;
  incident.state = t.state;
  switch (h.type) {
    case HT_EV_TCP_RETRANSMIT:
      incident.kind = TcpIncidentKind::kRetransmit;
      incident.timeout = (t.flags & HT_TCP_F_TIMEOUT) != 0;
      ++stats_.retransmits;
      break;
    case HT_EV_TCP_RESET_RECEIVED:
      incident.kind = TcpIncidentKind::kResetReceived;
      ++stats_.resets;
      break;
    case HT_EV_TCP_RESET_SENT:
      incident.kind = TcpIncidentKind::kResetSent;
      ++stats_.resets;
      break;
    default:
      return;  // a sample, not an incident
  }
  if (f.incidents.size() >= options_.max_incidents_per_connection) {
    f.incidents.pop_front();
    ++stats_.incidents_dropped;
  }
  f.incidents.push_back(incident);
}

const ConnNetFacts* NetworkFacts::Find(const ConnId& id) const {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : &it->second;
}

std::vector<TcpIncident> NetworkFacts::IncidentsBetween(const ConnId& id, uint64_t start_ns,
                                                        uint64_t end_ns) const {
  std::vector<TcpIncident> out;
  if (const ConnNetFacts* f = Find(id)) {
    for (const TcpIncident& i : f->incidents) {
      if (i.ts_ns >= start_ns && i.ts_ns <= end_ns) out.push_back(i);
    }
  }
  return out;
}

void NetworkFacts::NoteSpanConnection(const SpanId& span_id, const ConnId& conn) {
  // As many as connections: a SERVER span's caller finishes within moments.
  span_conns_.Add(span_id, conn);
}

std::optional<ConnId> NetworkFacts::SpanConnection(const SpanId& span_id) const {
  if (const ConnId* c = span_conns_.Find(span_id)) return *c;
  return std::nullopt;
}

void NetworkFacts::EvictOldest() {
  // The connections heard from longest ago go, an eighth at a time, so that
  // a full table costs one pass per many new connections, not one each.
  std::vector<std::pair<uint64_t, ConnId>> by_age;
  by_age.reserve(conns_.size());
  for (const auto& [id, f] : conns_) by_age.emplace_back(f.last_event_ns, id);
  const size_t n = std::max<size_t>(1, by_age.size() / 8);
  std::nth_element(by_age.begin(), by_age.begin() + (n - 1), by_age.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < n; ++i) conns_.erase(by_age[i].second);
  stats_.evicted += n;
}

void NetworkFacts::Tick(uint64_t now_ns) {
  // Idleness is counted in minutes: a pass per second is plenty.
  if (now_ns < last_sweep_ns_ + 1'000'000'000) return;
  last_sweep_ns_ = now_ns;
  for (auto it = conns_.begin(); it != conns_.end();) {
    const bool idle = now_ns > it->second.last_event_ns &&
                      now_ns - it->second.last_event_ns > options_.idle_ttl_ns;
    it = idle ? conns_.erase(it) : std::next(it);
  }
}

SpanEvent IncidentEvent(const TcpIncident& incident, std::string_view endpoint,
                        int64_t monotonic_to_unix_ns) {
  SpanEvent e;
  e.time_unix_nano =
      static_cast<uint64_t>(static_cast<int64_t>(incident.ts_ns) + monotonic_to_unix_ns);
  AddAttribute(e.attributes, "hoptrace.tcp.endpoint", endpoint);
  AddAttribute(e.attributes, "hoptrace.tcp.state", TcpStateName(incident.state));
  if (incident.kind == TcpIncidentKind::kRetransmit) {
    e.name = "hoptrace.tcp.retransmit";
    AddAttribute(e.attributes, "hoptrace.tcp.timeout", incident.timeout);
  } else {
    e.name = "hoptrace.tcp.reset";
    AddAttribute(e.attributes, "hoptrace.tcp.reset.direction",
        std::string(incident.kind == TcpIncidentKind::kResetReceived ? "received" : "sent"));
  }
  return e;
}

void AddNetworkAttributes(const ConnInfo& conn, bool server, const SpanBuildOptions& options,
                          Span* span) {
  NetworkFacts& facts = *options.network;
  const int64_t monotonic_to_unix_ns = options.monotonic_to_unix_ns;
  // Only a SERVER span with a traced caller is ever joined to that caller's
  // span (HopJoiner::Join): a root's connection is not worth remembering.
  if (server && span->parent_span_id.IsValid()) facts.NoteSpanConnection(span->span_id, conn.id);
  const ConnNetFacts* f = facts.Find(conn.id);
  if (f == nullptr) return;
  auto& a = span->attributes;
  const bool v6 = f->family == AF_INET6 && !(conn.tuple_known && IsV4Mapped(conn.remote_addr));
  AddAttribute(a, "network.type", v6 ? "ipv6" : "ipv4");
  if (f->sampled && f->srtt_us != 0) {
    AddAttribute(a, "hoptrace.tcp.srtt_us", int64_t{f->srtt_us});
    AddAttribute(a, "hoptrace.tcp.rttvar_us", int64_t{f->rttvar_us});
  }
  if (f->ttl != 0) {
    AddAttribute(a, "hoptrace.network.peer_ttl", int64_t{f->ttl});
    AddAttribute(a, "hoptrace.network.ip_hops", int64_t{*InferIpHops(f->ttl)});
  }
  const uint64_t start =
      static_cast<uint64_t>(static_cast<int64_t>(span->start_unix_nano) - monotonic_to_unix_ns);
  const uint64_t end =
      static_cast<uint64_t>(static_cast<int64_t>(span->end_unix_nano) - monotonic_to_unix_ns);
  int64_t retransmits = 0, timeouts = 0, resets = 0;
  const std::string_view endpoint = server ? "server" : "client";
  for (const TcpIncident& i : facts.IncidentsBetween(conn.id, start, end)) {
    if (i.kind == TcpIncidentKind::kRetransmit) {
      ++retransmits;
      timeouts += i.timeout ? 1 : 0;
    } else {
      ++resets;
    }
    span->events.push_back(IncidentEvent(i, endpoint, monotonic_to_unix_ns));
  }
  // Every attribute costs each exported span: the rare counts only when not 0.
  AddAttribute(a, "hoptrace.tcp.retransmits", retransmits);
  if (timeouts) AddAttribute(a, "hoptrace.tcp.timeouts", timeouts);
  if (resets) AddAttribute(a, "hoptrace.tcp.resets", resets);
  if (f->total_retrans) AddAttribute(a, "hoptrace.tcp.connection.retransmits", int64_t{f->total_retrans});
  if (f->total_rto) AddAttribute(a, "hoptrace.tcp.connection.timeouts", int64_t{f->total_rto});
}

}  // namespace hoptrace
