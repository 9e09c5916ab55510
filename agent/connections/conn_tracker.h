// Connection tracking: one Connection per (pid, fd, generation), fed by the
// decoded kernel events, each with the parser of its protocol
// (protocols/protocol.h): the one the kernel named in its open event, else
// the first registered protocol that recognises its bytes.
//
// Life of a connection:
//   CONN_OPEN (first bytes of a protocol we follow) -> DATA* -> CONN_CLOSE
//   - a CONN_OPEN or DATA with a new generation on a known (pid, fd) means
//     the fd was reused: the old connection is closed first;
//   - DATA without a CONN_OPEN (event lost) opens a connection with an
//     unknown tuple;
//   - process exit, idle timeout, the size bound and shutdown close
//     connections too, each with its reason.
// On close the parser reports what was pending, then the connection is
// gone: tracked_connections() returns to zero when the traffic stops.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "agent/connections/connection.h"
#include "agent/kernel/event_reader.h"
#include "agent/protocols/protocol.h"

namespace hoptrace {

// Receives what the protocol parsers produce, with the connection it came from.
class ExchangeHandler {
 public:
  virtual ~ExchangeHandler() = default;
  // A connection seen from its open event on (connect or accept), by the
  // thread that opened it.
  virtual void OnConnectionOpen(const ConnInfo& /*conn*/, uint32_t /*tid*/) {}
  virtual void OnRequestStart(const ConnInfo& conn, Role role, const RequestStart& request) = 0;
  // closing is set when the exchange was produced by the connection ending.
  virtual void OnExchange(const ConnInfo& conn, Role role, Exchange exchange,
                          const std::optional<Closing>& closing) = 0;
  // After the last OnExchange of a connection.
  virtual void OnConnectionGone(const ConnInfo& conn) = 0;
};

struct ConnTrackerOptions {
  size_t max_connections = 65536;
  uint64_t idle_timeout_ns = 300ull * 1000 * 1000 * 1000;  // 5 min
  ParserLimits parser_limits;
};

struct ConnTrackerStats {
  uint64_t opened = 0;
  uint64_t closed = 0;
  uint64_t evicted = 0;         // by the size bound
  uint64_t opened_by_data = 0;  // open event was lost
  uint64_t fd_reused = 0;
  // Bytes of connections no registered protocol recognised (yet): the open
  // event was lost and what followed starts no message.
  uint64_t unrecognised_bytes = 0;
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
  // Summed over the parsers of closed connections.
  const ParserStats& parser_stats() const { return parser_totals_; }

  // Pids that currently have connections (for liveness sweeps).
  std::vector<uint32_t> Pids() const;

 private:
  struct Connection;
  using Key = uint64_t;  // pid << 32 | fd
  static Key KeyOf(uint32_t pid, int32_t fd) { return (uint64_t{pid} << 32) | uint32_t(fd); }

  Connection* Open(const ht_event_header& hdr, const ht_tuple* tuple, ht_role role,
                   ht_protocol protocol);
  void Close(std::unordered_map<Key, std::unique_ptr<Connection>>::iterator it, uint64_t ts,
             CloseReason reason);
  void EvictOldest(uint64_t ts);

  ExchangeHandler* handler_;
  ConnTrackerOptions options_;
  std::unordered_map<Key, std::unique_ptr<Connection>> conns_;
  ConnTrackerStats stats_;
  ParserStats parser_totals_;
};

}  // namespace hoptrace
