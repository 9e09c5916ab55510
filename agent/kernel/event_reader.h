// Decodes raw ring-buffer records (bpf/socket_trace.h) into typed events and
// hands them to an EventHandler. The only code that interprets event bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "net_probe.h"
#include "socket_trace.h"
#include "uprobe_trace.h"

namespace hoptrace {

struct ConnEvent {
  const ht_event_header* hdr;
  const ht_tuple* tuple;
  ht_role role;
  ht_protocol protocol = HT_PROTO_UNKNOWN;
  uint32_t flags = 0;        // HT_CONN_F_*
  uint32_t tls_version = 0;  // with HT_CONN_F_TLS, when known
};

struct DataEvent {
  const ht_event_header* hdr;
  ht_direction direction;
  ht_syscall syscall;
  uint64_t bytes;             // what the syscall moved
  std::string_view captured;  // its first bytes; valid only during the call
};

struct ProcEvent {
  const ht_event_header* hdr;
  uint32_t ppid;
  int32_t exit_code;
  std::string_view comm;
};

// HT_EV_PROC_IDENTITY: who a selected process is, at its exec or its fork.
struct ProcIdentityEvent {
  const ht_event_header* hdr;
  const ht_proc_identity_event* identity;
  std::string_view comm;
  std::string_view path;  // empty at fork
};

// HT_EV_TCP_*: TCP facts of a followed connection (bpf/net_probe.h).
struct TcpEvent {
  const ht_event_header* hdr;
  const ht_tcp_event* tcp;
};

// HT_EV_SERVER_CTX / HT_EV_CLIENT_CTX: the trace context the kernel decided
// for one request (bpf/head_scan.bpf.h, bpf/inject.bpf.h).
struct CtxEvent {
  const ht_event_header* hdr;
  const ht_ctx_event* ctx;
  std::string_view tracestate;  // valid only during the call
};

// HT_EV_FIONREAD: a FIONREAD the propagation read guard ("detect") saw.
struct FionreadEvent {
  const ht_event_header* hdr;
  uint32_t flags;  // HT_FIONREAD_F_*
};

// HT_EV_FUNC_CALL / HT_EV_FUNC_ABANDONED: probed calls (bpf/uprobe_trace.h).
// index < depth <= HU_MAX_DEPTH is checked.
struct FuncCallEvent {
  const hu_call_event* call;
  bool abandoned;
  // A Python function's return (HU_F_PY_WHERE): where frames[index] is
  // defined; path_len < HU_PY_PATH_MAX is checked. Null otherwise.
  const hu_py_call_event* python = nullptr;
};

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void OnConnOpen(const ConnEvent& ev) = 0;
  virtual void OnData(const DataEvent& ev) = 0;
  virtual void OnConnClose(const ConnEvent& ev) = 0;
  virtual void OnProcExec(const ProcEvent& ev) = 0;
  virtual void OnProcExit(const ProcEvent& ev) = 0;
  virtual void OnProcIdentity(const ProcIdentityEvent& /*ev*/) {}
  // Only when kernel-side context propagation runs.
  virtual void OnTraceContext(const CtxEvent& /*ev*/) {}
  // Only when the network probes run; handlers that do not care ignore them.
  virtual void OnTcpEvent(const TcpEvent& /*ev*/) {}
  // Only with the propagation read guard in "detect" mode.
  virtual void OnFionread(const FionreadEvent& /*ev*/) {}
  // Only with --probe.
  virtual void OnFuncCall(const FuncCallEvent& /*ev*/) {}
};

struct EventReaderStats {
  uint64_t events = 0;
  uint64_t malformed = 0;  // too short, unknown type, captured > bytes
};

class EventReader {
 public:
  explicit EventReader(EventHandler* handler) : handler_(handler) {}
  // Decodes one record and dispatches it. Malformed records are counted and
  // dropped: the schema is ours, so they mean a bug, never a reason to crash.
  void Dispatch(std::span<const uint8_t> record);
  const EventReaderStats& stats() const { return stats_; }

 private:
  EventHandler* handler_;
  EventReaderStats stats_;
};

}  // namespace hoptrace
