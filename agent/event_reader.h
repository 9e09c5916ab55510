// Decodes raw ring-buffer records (bpf/socket_trace.h) into typed events and
// hands them to an EventHandler. The only code that interprets event bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "socket_trace.h"

namespace hoptrace {

struct ConnEvent {
  const ht_event_header* hdr;
  const ht_tuple* tuple;
  ht_role role;
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

class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void OnConnOpen(const ConnEvent& ev) = 0;
  virtual void OnData(const DataEvent& ev) = 0;
  virtual void OnConnClose(const ConnEvent& ev) = 0;
  virtual void OnProcExec(const ProcEvent& ev) = 0;
  virtual void OnProcExit(const ProcEvent& ev) = 0;
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
