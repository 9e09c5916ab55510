// Fuzzes the HTTP/1.x parser and stitcher with attacker-controlled bytes.
//
// (a) ParseHead / ParseTruncatedHead / LooksLikeStart on the whole input, for
//     both message types.
// (b) A Stitcher fed the input as syscalls. The first 3 bytes choose the role
//     and limits; after that the input is a script of records:
//       ctl, then (ctl & 0x3f) + 1 payload bytes (fewer at the end)
//     ctl bit 6: direction (egress / ingress);
//     ctl bit 7: the syscall moved more than was captured; the byte after the
//                payload gives the gap: 0..127 bytes, or (b - 128) * 1024.
// Besides sanitizer findings, traps when an invariant does not hold, so a
// logic bug shows up as a crash with its input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocols/http1/parse.h"
#include "agent/protocols/http1/stitcher.h"

namespace hoptrace::http1 {
namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool IsKeptName(std::string_view name) {
  for (std::string_view kept : kKeptHeaders) {
    if (kept == name) return true;
  }
  return false;
}

void CheckMessage(const Message& m) {
  Check(m.headers.size() <= 64);
  for (const auto& [name, value] : m.headers) Check(IsKeptName(name));
  Check(!m.chunked || m.content_length == -1);
  Check(m.first_byte_ts_enter <= m.last_byte_ts_enter);
  Check(m.first_byte_ts_enter <= m.first_byte_ts_exit);
}

void FuzzParse(std::string_view input) {
  for (MessageType type : {MessageType::kRequest, MessageType::kResponse}) {
    std::string_view buf = input;
    Message m;
    const ParseState state = ParseHead(type, &buf, &m);
    if (state == ParseState::kSuccess) {
      Check(m.head_bytes > 0 && m.head_bytes <= input.size());
      Check(buf.size() + m.head_bytes == input.size());
      Check(!m.head_truncated);
      Check(LooksLikeStart(type, input) || type == MessageType::kRequest);
      CheckMessage(m);
      if (type == MessageType::kResponse) Check(m.status_code >= 100 && m.status_code <= 999);
      // Any prefix of a valid head is "need more", never "invalid".
      std::string_view prefix = input.substr(0, m.head_bytes - 1);
      Message p;
      Check(ParseHead(type, &prefix, &p) == ParseState::kNeedsMoreData);
    } else {
      Check(buf.size() == input.size());
    }
    Message t;
    const ParseState truncated = ParseTruncatedHead(type, input, &t);
    if (truncated == ParseState::kSuccess) {
      Check(t.head_bytes <= input.size());
      Check(state == ParseState::kSuccess || t.head_truncated);
      CheckMessage(t);
    }
    if (state == ParseState::kSuccess) Check(truncated == ParseState::kSuccess);
    if (!input.empty() && input.front() != '\n' && input.front() != '\r' &&
        LooksLikeStart(type, input)) {
      Check(state != ParseState::kInvalid || input.find('\n') != std::string_view::npos);
    }
  }
}

struct CountingListener : Listener {
  void OnRequestHead(const Message& request) override {
    Check(request.type == MessageType::kRequest);
    CheckMessage(request);
    ++heads;
  }
  void OnRecord(Record record) override {
    Check(record.request.type == MessageType::kRequest);
    CheckMessage(record.request);
    switch (record.outcome) {
      case Record::Outcome::kComplete:
        Check(record.response.has_value());
        break;
      case Record::Outcome::kResponseIncomplete:
        Check(record.response.has_value() && !record.response->body_complete);
        break;
      case Record::Outcome::kNoResponse:
        Check(!record.response.has_value());
        break;
    }
    if (record.response) {
      const Message& r = *record.response;
      Check(r.type == MessageType::kResponse);
      Check(r.status_code >= 200 || r.status_code == 101);
      CheckMessage(r);
      if (r.body_complete && r.content_length >= 0 && !r.chunked && !r.head_truncated &&
          r.body_bytes != 0) {
        Check(r.body_bytes == static_cast<uint64_t>(r.content_length));
      }
    }
    ++records;
  }
  uint64_t heads = 0;
  uint64_t records = 0;
};

void FuzzStitcher(std::string_view input) {
  if (input.size() < 3) return;
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(input[i]); };
  const Role role = static_cast<Role>(byte(0) % 3);
  StitcherLimits limits;
  limits.max_buffered_bytes = (byte(1) & 1) ? 64 * 1024 : 16 + byte(1) * 4;
  limits.max_pending_requests = 1 + byte(2) % 8;
  CountingListener listener;
  Stitcher stitcher(role, &listener, limits);
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
      gap = g < 128 ? g : uint64_t{g - 128u} * 1024;
    }
    const Direction dir = (ctl & 0x40) ? Direction::kIngress : Direction::kEgress;
    stitcher.OnData(dir, captured, captured.size() + gap, now, now + 1, 7);
    now += 2;
    Check(stitcher.pending_requests() <= limits.max_pending_requests + 1);
    Check(listener.records == stitcher.stats().records);
    if (role != Role::kUnknown) Check(stitcher.role() == role);
  }
  stitcher.OnClose(now);
  Check(stitcher.pending_requests() == 0);
  Check(listener.records == stitcher.stats().records);
  // Each request head is reported once and then either recorded or dropped.
  Check(listener.heads == stitcher.stats().records + stitcher.stats().pending_overflow);
}

}  // namespace
}  // namespace hoptrace::http1

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  hoptrace::http1::FuzzParse(input);
  hoptrace::http1::FuzzStitcher(input);
  return 0;
}
