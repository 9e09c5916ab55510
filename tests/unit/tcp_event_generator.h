// Builds the records bpf/net_probe.bpf.c sends (struct ht_tcp_event), for
// the connection of a ConnGenerator: tests feed them through EventReader
// like the kernel's.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "event_generator.h"
#include "net_probe.h"

namespace hoptrace::testing {

struct TcpFacts {
  uint32_t srtt_us = 50;
  uint32_t rttvar_us = 25;
  uint32_t min_rtt_us = 40;
  uint32_t total_retrans = 0;
  uint32_t total_rto = 0;
  uint8_t ttl = 64;
  uint16_t family = AF_INET;
  uint8_t state = 1;  // ESTABLISHED
  uint8_t flags = 0;
  uint16_t reason = HT_TCP_SAMPLE_FIRST;
};

// An event of type (HT_EV_TCP_*) at the clock's now, for the connection
// conn reports (its Open() record names pid, fd and generation).
inline std::vector<uint8_t> TcpRecord(const FakeClock& clock, ConnGenerator& conn, uint32_t type,
                                      const TcpFacts& f = {}) {
  const std::vector<uint8_t> open = conn.Open();
  const auto* named = reinterpret_cast<const ht_conn_event*>(open.data());
  std::vector<uint8_t> rec(sizeof(ht_tcp_event));
  auto* ev = reinterpret_cast<ht_tcp_event*>(rec.data());
  ev->hdr.type = type;
  ev->hdr.pid = named->hdr.pid;
  ev->hdr.tid = 0;
  ev->hdr.fd = named->hdr.fd;
  ev->hdr.conn_gen = named->hdr.conn_gen;
  ev->hdr.ts_enter_ns = ev->hdr.ts_exit_ns = clock.now();
  ev->srtt_us = f.srtt_us;
  ev->rttvar_us = f.rttvar_us;
  ev->min_rtt_us = f.min_rtt_us;
  ev->total_retrans = f.total_retrans;
  ev->total_rto = f.total_rto;
  ev->family = f.family;
  ev->ttl = f.ttl;
  ev->state = f.state;
  ev->flags = f.flags;
  ev->reason = f.reason;
  return rec;
}

}  // namespace hoptrace::testing
