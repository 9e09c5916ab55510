#include "agent/connections/conn_tracker.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace hoptrace {
namespace {

std::string FormatAddr(uint16_t family, const std::array<uint8_t, 16>& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, addr.data(), buf, sizeof(buf));
  } else if (family == AF_INET6) {
    // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d; report
    // the IPv4 address, as the peer itself would.
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr.data(), kMapped, sizeof(kMapped)) == 0) {
      inet_ntop(AF_INET, addr.data() + 12, buf, sizeof(buf));
    } else {
      inet_ntop(AF_INET6, addr.data(), buf, sizeof(buf));
    }
  }
  return buf;
}

http1::Role RoleOf(ht_role role) {
  switch (role) {
    case HT_ROLE_CLIENT: return http1::Role::kClient;
    case HT_ROLE_SERVER: return http1::Role::kServer;
    default: return http1::Role::kUnknown;
  }
}

}  // namespace

std::string ConnInfo::LocalAddress() const {
  return tuple_known ? FormatAddr(family, local_addr) : "";
}
std::string ConnInfo::RemoteAddress() const {
  return tuple_known ? FormatAddr(family, remote_addr) : "";
}

std::string_view CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kClosed: return "closed";
    case CloseReason::kProcessExit: return "process_exit";
    case CloseReason::kIdle: return "idle";
    case CloseReason::kEvicted: return "evicted";
    case CloseReason::kShutdown: return "shutdown";
  }
  return "closed";
}

// One connection: its identity and the stitcher that turns its bytes into
// exchanges. Also the stitcher's listener, adding the connection to each call.
struct ConnTracker::Connection : http1::Listener {
  Connection(ConnInfo info_in, ExchangeHandler* handler_in, const http1::StitcherLimits& limits)
      : info(std::move(info_in)),
        handler(handler_in),
        stitcher(RoleOf(info.kernel_role), this, limits) {}

  void OnRequestHead(const http1::Message& request) override {
    handler->OnRequestHead(info, stitcher.role(), request);
  }
  void OnRecord(http1::Record record) override {
    handler->OnExchange(info, stitcher.role(), std::move(record), closing);
  }

  ConnInfo info;
  ExchangeHandler* handler;
  http1::Stitcher stitcher;
  uint64_t last_activity_ns = 0;
  std::optional<Closing> closing;
};

ConnTracker::ConnTracker(ExchangeHandler* handler, ConnTrackerOptions options)
    : handler_(handler), options_(options) {}

ConnTracker::~ConnTracker() = default;

ConnTracker::Connection* ConnTracker::Open(const ht_event_header& hdr, const ht_tuple* tuple,
                                           ht_role role) {
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
  auto conn = std::make_unique<Connection>(std::move(info), handler_, options_.stitcher_limits);
  conn->last_activity_ns = hdr.ts_exit_ns;
  ++stats_.opened;
  if (conn->info.followed_from_open) handler_->OnConnectionOpen(conn->info, hdr.tid);
  return conns_.emplace(key, std::move(conn)).first->second.get();
}

void ConnTracker::OnConnOpen(const ConnEvent& ev) {
  Connection* conn = Open(*ev.hdr, ev.tuple, ev.role);
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
    conn = Open(hdr, nullptr, HT_ROLE_UNKNOWN);
  }
  conn->last_activity_ns = hdr.ts_exit_ns;
  // TLS plaintext, even when the open event that says so was lost.
  if (ev.syscall == HT_SYS_SSL_READ || ev.syscall == HT_SYS_SSL_WRITE) conn->info.tls = true;
  (ev.direction == HT_DIR_EGRESS ? conn->info.bytes_written : conn->info.bytes_read) += ev.bytes;
  conn->stitcher.OnData(
      ev.direction == HT_DIR_EGRESS ? http1::Direction::kEgress : http1::Direction::kIngress,
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
  conn->stitcher.OnClose(ts);
  const auto& s = conn->stitcher.stats();
  stitcher_totals_.records += s.records;
  stitcher_totals_.orphan_responses += s.orphan_responses;
  stitcher_totals_.invalid_bytes += s.invalid_bytes;
  stitcher_totals_.resyncs += s.resyncs;
  stitcher_totals_.pending_overflow += s.pending_overflow;
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
  for (const auto& [key, conn] : conns_) n += conn->stitcher.pending_requests();
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
