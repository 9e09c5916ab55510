// Builds ring-buffer records exactly as bpf/socket_trace.bpf.c does, so the
// agent pipeline can be tested without a kernel. Time is a fake clock that
// the test advances.
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "socket_trace.h"

namespace hoptrace::testing {

class FakeClock {
 public:
  uint64_t now() const { return now_; }
  uint64_t Advance(uint64_t ns) { return now_ += ns; }

 private:
  uint64_t now_ = 1'000'000'000;  // CLOCK_MONOTONIC-like, never zero
};

// One connection of one process, as the kernel would report it.
class ConnGenerator {
 public:
  ConnGenerator(FakeClock* clock, uint32_t pid, int32_t fd, ht_role role, const char* local_ip,
                uint16_t local_port, const char* remote_ip, uint16_t remote_port)
      : clock_(clock), pid_(pid), tid_(pid), fd_(fd), role_(role) {
    gen_ = clock->now();
    tuple_.family = AF_INET;
    tuple_.local_port = local_port;
    tuple_.remote_port = remote_port;
    inet_pton(AF_INET, local_ip, tuple_.local_addr);
    inet_pton(AF_INET, remote_ip, tuple_.remote_addr);
  }

  void set_tid(uint32_t tid) { tid_ = tid; }
  // What the open event says the kernel recognised (HTTP/1 by default).
  void set_protocol(ht_protocol protocol) { protocol_ = protocol; }
  const ht_tuple& tuple() const { return tuple_; }

  std::vector<uint8_t> Open() const { return Conn(HT_EV_CONN_OPEN); }
  std::vector<uint8_t> Close() const { return Conn(HT_EV_CONN_CLOSE); }

  // A syscall that moved `data` (or total_bytes, of which data is the
  // captured prefix) and took `syscall_ns`.
  std::vector<uint8_t> Data(ht_direction dir, std::string_view data, uint64_t total_bytes = 0,
                            uint64_t syscall_ns = 1000) {
    if (total_bytes == 0) total_bytes = data.size();
    std::vector<uint8_t> rec(sizeof(ht_data_event) + data.size());
    auto* ev = reinterpret_cast<ht_data_event*>(rec.data());
    const uint64_t enter = clock_->now();
    Header(&ev->hdr, HT_EV_DATA, enter, clock_->Advance(syscall_ns));
    ev->direction = dir;
    ev->syscall = dir == HT_DIR_EGRESS ? HT_SYS_WRITE : HT_SYS_READ;
    ev->bytes = total_bytes;
    ev->captured = static_cast<uint32_t>(data.size());
    memcpy(ev->payload, data.data(), data.size());
    return rec;
  }

 private:
  void Header(ht_event_header* h, uint32_t type, uint64_t enter, uint64_t exit) const {
    h->type = type;
    h->pid = pid_;
    h->tid = tid_;
    h->fd = fd_;
    h->conn_gen = gen_;
    h->ts_enter_ns = enter;
    h->ts_exit_ns = exit;
  }

  std::vector<uint8_t> Conn(uint32_t type) const {
    std::vector<uint8_t> rec(sizeof(ht_conn_event));
    auto* ev = reinterpret_cast<ht_conn_event*>(rec.data());
    Header(&ev->hdr, type, clock_->now(), clock_->now());
    ev->tuple = tuple_;
    ev->role = role_;
    ev->protocol = protocol_;
    return rec;
  }

  FakeClock* clock_;
  uint32_t pid_, tid_;
  int32_t fd_;
  ht_role role_;
  ht_protocol protocol_ = HT_PROTO_HTTP1;
  uint64_t gen_;
  ht_tuple tuple_{};
};

inline std::vector<uint8_t> ProcExit(const FakeClock& clock, uint32_t pid) {
  std::vector<uint8_t> rec(sizeof(ht_proc_event));
  auto* ev = reinterpret_cast<ht_proc_event*>(rec.data());
  ev->hdr.type = HT_EV_PROC_EXIT;
  ev->hdr.pid = ev->hdr.tid = pid;
  ev->hdr.fd = -1;
  ev->hdr.ts_enter_ns = ev->hdr.ts_exit_ns = clock.now();
  return rec;
}

// HT_EV_PROC_IDENTITY at exec (path given) or fork (path empty).
inline std::vector<uint8_t> ProcIdentity(const FakeClock& clock, uint32_t pid, uint32_t ppid,
                                         std::string_view comm, std::string_view path,
                                         uint32_t flags, uint64_t start_boottime_ns) {
  std::vector<uint8_t> rec(sizeof(ht_proc_identity_event));
  auto* ev = reinterpret_cast<ht_proc_identity_event*>(rec.data());
  ev->hdr.type = HT_EV_PROC_IDENTITY;
  ev->hdr.pid = ev->hdr.tid = pid;
  ev->hdr.fd = -1;
  ev->hdr.ts_enter_ns = ev->hdr.ts_exit_ns = clock.now();
  ev->ppid = ppid;
  ev->flags = flags;
  ev->start_boottime_ns = start_boottime_ns;
  ev->cgroup_id = 1;
  comm.copy(ev->comm, sizeof(ev->comm) - 1);
  path.copy(ev->path, sizeof(ev->path) - 1);
  return rec;
}

}  // namespace hoptrace::testing
