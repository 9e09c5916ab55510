// A libFuzzer harness for any ProtocolParser (protocols/protocol.h): the
// input is a script of syscalls, and the sink checks the interface's
// promises, trapping when one breaks (so a logic bug shows up as a crash
// with its input).
//
// Input: byte 0 chooses the role (% 3) and byte 1 the limits; then records:
//   ctl, then (ctl & 0x3f) + 1 payload bytes (fewer at the end)
//   ctl bit 6: direction (egress / ingress);
//   ctl bit 7: the syscall moved more than was captured; the byte after the
//              payload gives the gap: 0..127 bytes, or (b - 128) * 1024.
// Promises checked: every exchange was announced once, in order of ids; no
// exchange twice; pending_requests() is what was announced and not reported;
// after OnClose nothing is pending; timings never run backwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string_view>

#include "agent/protocols/protocol.h"

namespace hoptrace::fuzz {

inline void Check(bool ok) {
  if (!ok) __builtin_trap();
}

struct CheckingSink : ExchangeSink {
  void OnRequestStart(const RequestStart& r) override {
    Check(announced.insert(r.exchange_id).second);
    Check(r.exchange_id > last_announced);
    last_announced = r.exchange_id;
    Check(r.timing.first_byte_ts_enter <= r.timing.last_byte_ts_enter);
  }
  void OnExchange(Exchange e) override {
    Check(announced.count(e.exchange_id) == 1);
    Check(reported.insert(e.exchange_id).second);
    Check(e.details != nullptr);
    Check(e.request.first_byte_ts_enter <= e.request.last_byte_ts_enter);
    if (e.response) Check(e.response->first_byte_ts_enter <= e.response->last_byte_ts_enter);
    Check(!e.details->SpanName().empty());
  }
  std::set<uint64_t> announced, reported;
  uint64_t last_announced = 0;
};

// Also lets a protocol check its details (e.g. that no value leaks).
inline void FuzzParser(const Protocol& protocol, const uint8_t* data, size_t size) {
  if (size < 2) return;
  const Role role = static_cast<Role>(data[0] % 3);
  ParserLimits limits;
  limits.max_buffered_bytes = 16 + (data[1] & 0x0f) * 512;
  limits.max_pending_requests = 1 + (data[1] >> 4);
  CheckingSink sink;
  auto parser = protocol.new_parser(role, &sink, limits);
  size_t i = 2;
  uint64_t ts = 1;
  while (i < size) {
    const uint8_t ctl = data[i++];
    const size_t n = std::min<size_t>((ctl & 0x3f) + 1, size - i);
    std::string_view payload(reinterpret_cast<const char*>(data + i), n);
    i += n;
    uint64_t total = n;
    if ((ctl & 0x80) && i < size) {
      const uint8_t g = data[i++];
      total += g < 128 ? g : uint64_t{g - 128u} * 1024;
    }
    const Direction dir = (ctl & 0x40) ? Direction::kIngress : Direction::kEgress;
    parser->OnData(dir, payload, total, ts, ts + 1, 1);
    ts += 2;
    Check(parser->pending_requests() == sink.announced.size() - sink.reported.size());
    Check(parser->pending_requests() <= limits.max_pending_requests);
  }
  parser->OnClose(ts);
  Check(parser->pending_requests() == 0);
  Check(sink.announced == sink.reported);
  Check(parser->stats().records == sink.reported.size());
}

}  // namespace hoptrace::fuzz
