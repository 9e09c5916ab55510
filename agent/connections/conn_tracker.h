// Connection tracking: one Connection per (pid, fd, generation), fed by the
// decoded kernel events, each with its own HTTP/1 stitcher.
//
// Life of a connection:
//   CONN_OPEN (first HTTP-looking bytes) -> DATA* -> CONN_CLOSE
//   - a CONN_OPEN or DATA with a new generation on a known (pid, fd) means
//     the fd was reused: the old connection is closed first;
//   - DATA without a CONN_OPEN (event lost) opens a connection with an
//     unknown tuple;
//   - process exit, idle timeout, the size bound and shutdown close
//     connections too, each with its reason.
// On close the stitcher reports what was pending, then the connection is
// gone: tracked_connections() returns to zero when the traffic stops.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "agent/kernel/event_reader.h"
#include "agent/protocols/http1/stitcher.h"

namespace hoptrace {

struct ConnId {
  uint32_t pid = 0;
  int32_t fd = -1;
  uint64_t gen = 0;
  bool operator==(const ConnId&) const = default;
};

struct ConnIdHash {
  size_t operator()(const ConnId& c) const {
    return std::hash<uint64_t>()((uint64_t{c.pid} << 32 | uint32_t(c.fd)) ^ (c.gen * 0x9e3779b97f4a7c15ull));
  }
};

struct ConnInfo {
  ConnId id;
  bool tuple_known = false;
  uint16_t family = 0;  // AF_INET / AF_INET6
  std::array<uint8_t, 16> local_addr{};
  std::array<uint8_t, 16> remote_addr{};
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  ht_role kernel_role = HT_ROLE_UNKNOWN;
  // Its protocol's bytes are TLS plaintext (read by uprobes on the TLS
  // library); tls_version is the negotiated wire version (0x0303 = TLS 1.2,
  // 0x0304 = TLS 1.3) when the kernel could read it, else 0.
  bool tls = false;
  uint16_t tls_version = 0;
  // Bytes the process wrote and read on it so far, as the events say; whole
  // only when the connection was followed from its open event on.
  bool followed_from_open = false;
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;

  std::string LocalAddress() const;   // "10.0.0.1", "::1"; "" if unknown
  std::string RemoteAddress() const;
};

enum class CloseReason { kClosed, kProcessExit, kIdle, kEvicted, kShutdown };
std::string_view CloseReasonName(CloseReason reason);

// Why and when a connection ended, for records produced by its end.
struct Closing {
  CloseReason reason = CloseReason::kClosed;
  uint64_t ts_ns = 0;  // CLOCK_MONOTONIC
};

// Receives what the HTTP stitchers produce, with the connection it came from.
class ExchangeHandler {
 public:
  virtual ~ExchangeHandler() = default;
  // A connection seen from its open event on (connect or accept), by the
  // thread that opened it.
  virtual void OnConnectionOpen(const ConnInfo& /*conn*/, uint32_t /*tid*/) {}
  virtual void OnRequestHead(const ConnInfo& conn, http1::Role role,
                             const http1::Message& request) = 0;
  // closing is set when the record was produced by the connection ending.
  virtual void OnExchange(const ConnInfo& conn, http1::Role role, http1::Record record,
                          const std::optional<Closing>& closing) = 0;
  // After the last OnExchange of a connection.
  virtual void OnConnectionGone(const ConnInfo& conn) = 0;
};

struct ConnTrackerOptions {
  size_t max_connections = 65536;
  uint64_t idle_timeout_ns = 300ull * 1000 * 1000 * 1000;  // 5 min
  http1::StitcherLimits stitcher_limits;
};

struct ConnTrackerStats {
  uint64_t opened = 0;
  uint64_t closed = 0;
  uint64_t evicted = 0;         // by the size bound
  uint64_t opened_by_data = 0;  // open event was lost
  uint64_t fd_reused = 0;
};

class ConnTracker {
 public:
  ConnTracker(ExchangeHandler* handler, ConnTrackerOptions options = {});
  ~ConnTracker();

  void OnConnOpen(const ConnEvent& ev);
  void OnData(const DataEvent& ev);
  void OnConnClose(const ConnEvent& ev);
  // Every connection of pid ends (the process exited).
  void OnProcessExit(uint32_t pid, uint64_t ts);
  // Closes connections idle for longer than the timeout. now: CLOCK_MONOTONIC ns.
  void Tick(uint64_t now_ns);
  // Closes every connection (agent shutdown).
  void CloseAll(uint64_t ts, CloseReason reason);

  size_t tracked_connections() const { return conns_.size(); }
  size_t pending_requests() const;
  const ConnTrackerStats& stats() const { return stats_; }
  http1::StitcherStats stitcher_stats() const { return stitcher_totals_; }

  // Pids that currently have connections (for liveness sweeps).
  std::vector<uint32_t> Pids() const;

 private:
  struct Connection;
  using Key = uint64_t;  // pid << 32 | fd
  static Key KeyOf(uint32_t pid, int32_t fd) { return (uint64_t{pid} << 32) | uint32_t(fd); }

  Connection* Open(const ht_event_header& hdr, const ht_tuple* tuple, ht_role role);
  void Close(std::unordered_map<Key, std::unique_ptr<Connection>>::iterator it, uint64_t ts,
             CloseReason reason);
  void EvictOldest(uint64_t ts);

  ExchangeHandler* handler_;
  ConnTrackerOptions options_;
  std::unordered_map<Key, std::unique_ptr<Connection>> conns_;
  ConnTrackerStats stats_;
  http1::StitcherStats stitcher_totals_;
};

}  // namespace hoptrace
