#include "agent/connections/conn_tracker.h"

#include <algorithm>
#include <cstring>

namespace hoptrace {
namespace {

Role RoleOf(ht_role role) {
  switch (role) {
    case HT_ROLE_CLIENT: return Role::kClient;
    case HT_ROLE_SERVER: return Role::kServer;
    default: return Role::kUnknown;
  }
}

}  // namespace

// One connection: its identity and the parser that turns its bytes into
// exchanges. Also the parser's sink, adding the connection to each call.
struct ConnTracker::Connection : ExchangeSink {
  Connection(ConnInfo info_in, ExchangeHandler* handler_in)
      : info(std::move(info_in)), handler(handler_in) {}

  void OnRequestStart(const RequestStart& request) override {
    handler->OnRequestStart(info, parser->role(), request);
  }
  void OnExchange(Exchange exchange) override {
    handler->OnExchange(info, parser->role(), std::move(exchange), closing);
  }

  ConnInfo info;
  ExchangeHandler* handler;
  // Null until the protocol is known: the kernel's tag, or the first bytes
  // a registered protocol recognises.
  std::unique_ptr<ProtocolParser> parser;
  uint64_t last_activity_ns = 0;
  std::optional<Closing> closing;
};

ConnTracker::ConnTracker(ExchangeHandler* handler, ConnTrackerOptions options)
    : handler_(handler), options_(options) {}

ConnTracker::~ConnTracker() = default;

ConnTracker::Connection* ConnTracker::Open(const ht_event_header& hdr, const ht_tuple* tuple,
                                           ht_role role, ht_protocol protocol) {
  const Key key = KeyOf(hdr.pid, hdr.fd);
  if (auto it = conns_.find(key); it != conns_.end()) {
    if (it->second->info.id.gen == hdr.conn_gen) return it->second.get();
    // Same fd, new connection: the close of the old one was not seen.
    ++stats_.fd_reused;
    Close(it, hdr.ts_enter_ns, CloseReason::kClosed);
  }
  if (conns_.size() >= options_.max_connections) EvictOldest(hdr.ts_enter_ns);

  ConnInfo info;
  info.id = ConnId{hdr.pid, hdr.fd, hdr.conn_gen};
  info.kernel_role = role;
  info.followed_from_open = role != HT_ROLE_UNKNOWN;
  if (tuple != nullptr) {
    info.tuple_known = true;
    info.family = tuple->family;
    memcpy(info.local_addr.data(), tuple->local_addr, 16);
    memcpy(info.remote_addr.data(), tuple->remote_addr, 16);
    info.local_port = tuple->local_port;
    info.remote_port = tuple->remote_port;
  }
  auto conn = std::make_unique<Connection>(std::move(info), handler_);
  if (const Protocol* p = ProtocolForTag(protocol)) {
    conn->info.protocol = protocol;
    conn->parser = p->new_parser(RoleOf(role), conn.get(), options_.parser_limits);
  }
  conn->last_activity_ns = hdr.ts_exit_ns;
  ++stats_.opened;
  if (conn->info.followed_from_open) handler_->OnConnectionOpen(conn->info, hdr.tid);
  return conns_.emplace(key, std::move(conn)).first->second.get();
}

void ConnTracker::OnConnOpen(const ConnEvent& ev) {
  Connection* conn = Open(*ev.hdr, ev.tuple, ev.role, ev.protocol);
  if (ev.flags & HT_CONN_F_TLS) {
    conn->info.tls = true;
    conn->info.tls_version = static_cast<uint16_t>(ev.tls_version);
  }
}

void ConnTracker::OnData(const DataEvent& ev) {
  const auto& hdr = *ev.hdr;
  Connection* conn;
  auto it = conns_.find(KeyOf(hdr.pid, hdr.fd));
  if (it != conns_.end() && it->second->info.id.gen == hdr.conn_gen) {
    conn = it->second.get();
  } else {
    ++stats_.opened_by_data;
    conn = Open(hdr, nullptr, HT_ROLE_UNKNOWN, HT_PROTO_UNKNOWN);
  }
  conn->last_activity_ns = hdr.ts_exit_ns;
  // TLS plaintext, even when the open event that says so was lost.
  if (ev.syscall == HT_SYS_SSL_READ || ev.syscall == HT_SYS_SSL_WRITE ||
      ev.syscall == HT_SYS_GOTLS_READ || ev.syscall == HT_SYS_GOTLS_WRITE) {
    conn->info.tls = true;
  }
  (ev.direction == HT_DIR_EGRESS ? conn->info.bytes_written : conn->info.bytes_read) += ev.bytes;
  if (!conn->parser) {
    // The open event was lost (or named nothing we parse): wait for bytes
    // that start a message of a registered protocol.
    const Protocol* p = RecogniseProtocol(ev.captured);
    if (p == nullptr) {
      stats_.unrecognised_bytes += ev.bytes;
      return;
    }
    conn->info.protocol = p->kernel_tag;
    conn->parser = p->new_parser(RoleOf(conn->info.kernel_role), conn, options_.parser_limits);
  }
  conn->parser->OnData(ev.direction == HT_DIR_EGRESS ? Direction::kEgress : Direction::kIngress,
                       ev.captured, ev.bytes, hdr.ts_enter_ns, hdr.ts_exit_ns, hdr.tid);
}

void ConnTracker::OnConnClose(const ConnEvent& ev) {
  auto it = conns_.find(KeyOf(ev.hdr->pid, ev.hdr->fd));
  if (it == conns_.end() || it->second->info.id.gen != ev.hdr->conn_gen) return;
  Close(it, ev.hdr->ts_enter_ns, CloseReason::kClosed);
}

void ConnTracker::Close(std::unordered_map<Key, std::unique_ptr<Connection>>::iterator it,
                        uint64_t ts, CloseReason reason) {
  std::unique_ptr<Connection> conn = std::move(it->second);
  conns_.erase(it);
  conn->closing = Closing{reason, ts};
  if (conn->parser) {
    conn->parser->OnClose(ts);
    parser_totals_ += conn->parser->stats();
  }
  handler_->OnConnectionGone(conn->info);
  ++stats_.closed;
}

void ConnTracker::OnProcessExit(uint32_t pid, uint64_t ts) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto next = std::next(it);
    if (it->second->info.id.pid == pid) Close(it, ts, CloseReason::kProcessExit);
    it = next;
  }
}

void ConnTracker::Tick(uint64_t now_ns) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto next = std::next(it);
    if (now_ns > it->second->last_activity_ns &&
        now_ns - it->second->last_activity_ns > options_.idle_timeout_ns) {
      Close(it, now_ns, CloseReason::kIdle);
    }
    it = next;
  }
}

void ConnTracker::EvictOldest(uint64_t ts) {
  auto oldest = std::min_element(conns_.begin(), conns_.end(), [](const auto& a, const auto& b) {
    return a.second->last_activity_ns < b.second->last_activity_ns;
  });
  if (oldest == conns_.end()) return;
  ++stats_.evicted;
  Close(oldest, ts, CloseReason::kEvicted);
}

void ConnTracker::CloseAll(uint64_t ts, CloseReason reason) {
  while (!conns_.empty()) Close(conns_.begin(), ts, reason);
}

size_t ConnTracker::pending_requests() const {
  size_t n = 0;
  for (const auto& [key, conn] : conns_) {
    if (conn->parser) n += conn->parser->pending_requests();
  }
  return n;
}

std::vector<uint32_t> ConnTracker::Pids() const {
  std::vector<uint32_t> pids;
  for (const auto& [key, conn] : conns_) pids.push_back(conn->info.id.pid);
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

}  // namespace hoptrace
