// Fuzzes the HTTP/2 frame reader, HPACK decoder and stream parser with
// attacker-controlled bytes.
//
// (a) HpackDecoder::Decode on the whole input, with a known and with a lost
//     (degraded) table; HuffmanDecode on it.
// (b) An Http2Parser fed the input as syscalls. The first 3 bytes choose the
//     role and limits; after that the input is a script of records:
//       ctl, then (ctl & 0x3f) + 1 payload bytes (fewer at the end)
//     ctl bit 6: direction (egress / ingress);
//     ctl bit 7: the syscall moved more than was captured; the byte after the
//                payload gives the gap: 0..127 bytes, or (b - 128) * 64.
// Besides sanitizer findings, traps when an invariant does not hold, so a
// logic bug shows up as a crash with its input.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "agent/protocols/http2/hpack_decoder.h"
#include "agent/protocols/http2/huffman.h"
#include "agent/protocols/http2/parser.h"

namespace hoptrace::http2 {
namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void FuzzHpack(std::string_view input) {
  for (bool lost : {false, true}) {
    HpackDecoder d(nullptr, /*max_tracked_size=*/4096);
    if (lost) d.LoseState();
    size_t fields = 0;
    const auto r = d.Decode(input, [&](std::string_view name, std::string_view value) {
      Check(name.size() + value.size() <= input.size() * 8 / 5 + 64);
      ++fields;
    });
    Check(fields <= input.size());
    Check(d.table_size() <= 4096);
    Check(d.table_size() <= d.max_table_size() || d.table_entries() == 0);
    if (r == HpackDecoder::Result::kInvalid) Check(!d.state_known());
    if (!lost && r == HpackDecoder::Result::kOk) Check(d.unknown_fields() == 0);
  }
  std::string out;
  if (HuffmanDecode(input, &out)) Check(out.size() <= input.size() * 8 / 5);
}

struct CheckingSink : ExchangeSink {
  void OnRequestStart(const RequestStart& r) override {
    Check(r.exchange_id % 2 == 1);
    Check(open.insert(r.exchange_id).second);  // announced once
    Check(!r.traceparent || !r.traceparent->empty());
    ++starts;
  }
  void OnExchange(Exchange e) override {
    Check(open.erase(e.exchange_id) == 1);  // announced, ended once
    Check(e.details != nullptr);
    Check(e.outcome == Exchange::Outcome::kNoResponse ? !e.response : e.response.has_value());
    Check(!e.details->SpanName().empty());
    ++records;
  }
  std::set<uint64_t> open;
  uint64_t starts = 0;
  uint64_t records = 0;
};

void FuzzParser(std::string_view input) {
  if (input.size() < 3) return;
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(input[i]); };
  const Role role = static_cast<Role>(byte(0) % 3);
  ParserLimits limits;
  limits.max_buffered_bytes = (byte(1) & 1) ? 64 * 1024 : 16 + byte(1) * 4;
  limits.max_pending_requests = 1 + byte(2) % 8;
  CheckingSink sink;
  Http2Parser parser(role, &sink, limits);
  uint64_t now = 1;
  size_t pos = 3;
  while (pos < input.size()) {
    const uint8_t ctl = byte(pos++);
    const size_t len = std::min<size_t>((ctl & 0x3f) + 1, input.size() - pos);
    const std::string_view captured = input.substr(pos, len);
    pos += len;
    uint64_t gap = 0;
    if ((ctl & 0x80) && pos < input.size()) {
      const uint8_t g = byte(pos++);
      gap = g < 128 ? g : uint64_t{g - 128u} * 64;
    }
    const Direction dir = (ctl & 0x40) ? Direction::kIngress : Direction::kEgress;
    parser.OnData(dir, captured, captured.size() + gap, now, now + 1, 7);
    now += 2;
    Check(parser.pending_requests() <= limits.max_pending_requests);
    Check(parser.pending_requests() == sink.open.size());
    Check(sink.records == parser.stats().records);
    if (role != Role::kUnknown) Check(parser.role() == role);
  }
  parser.OnClose(now);
  Check(parser.pending_requests() == 0);
  Check(sink.open.empty());
  Check(sink.starts == sink.records);
}

}  // namespace
}  // namespace hoptrace::http2

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  hoptrace::http2::FuzzHpack(input);
  hoptrace::http2::FuzzParser(input);
  return 0;
}
