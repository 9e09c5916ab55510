// Builds HTTP/2 frames and HPACK header blocks for tests: plain (no
// Huffman) representations chosen by the test, so it says exactly which
// fields go through the dynamic table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocols/http2/frame.h"

namespace hoptrace::http2::test {

// RFC 7541 5.1 integer with `prefix_bits`, high bits of the first octet `first`.
inline std::string HpackInt(int prefix_bits, uint8_t first, uint64_t v) {
  std::string out;
  const uint64_t max = (1u << prefix_bits) - 1;
  if (v < max) {
    out.push_back(static_cast<char>(first | v));
    return out;
  }
  out.push_back(static_cast<char>(first | max));
  v -= max;
  while (v >= 128) {
    out.push_back(static_cast<char>(0x80 | (v & 0x7f)));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

inline std::string HpackString(std::string_view s) { return HpackInt(7, 0, s.size()) + std::string(s); }

// 6.1 indexed field.
inline std::string Indexed(uint64_t index) { return HpackInt(7, 0x80, index); }
// 6.2.1 literal with incremental indexing, new name.
inline std::string Indexing(std::string_view name, std::string_view value) {
  return std::string(1, '\x40') + HpackString(name) + HpackString(value);
}
// 6.2.1 literal with incremental indexing, indexed name.
inline std::string IndexingNameRef(uint64_t name_index, std::string_view value) {
  return HpackInt(6, 0x40, name_index) + HpackString(value);
}
// 6.2.2 literal without indexing, new name.
inline std::string Literal(std::string_view name, std::string_view value) {
  return std::string(1, '\0') + HpackString(name) + HpackString(value);
}
// 6.2.2 literal without indexing, indexed name.
inline std::string LiteralNameRef(uint64_t name_index, std::string_view value) {
  return HpackInt(4, 0x00, name_index) + HpackString(value);
}

inline std::string MakeFrame(FrameType type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f;
  const auto len = static_cast<uint32_t>(payload.size());
  f.push_back(static_cast<char>(len >> 16));
  f.push_back(static_cast<char>(len >> 8));
  f.push_back(static_cast<char>(len));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>(stream >> 24));
  f.push_back(static_cast<char>(stream >> 16));
  f.push_back(static_cast<char>(stream >> 8));
  f.push_back(static_cast<char>(stream));
  return f + std::string(payload);
}

inline std::string Headers(uint32_t stream, std::string_view block, bool end_stream = false) {
  return MakeFrame(FrameType::kHeaders, kFlagEndHeaders | (end_stream ? kFlagEndStream : 0), stream,
               block);
}
inline std::string Data(uint32_t stream, size_t n, bool end_stream = false) {
  return MakeFrame(FrameType::kData, end_stream ? kFlagEndStream : 0, stream, std::string(n, 'd'));
}
inline std::string Settings(std::string_view payload = {}) {
  return MakeFrame(FrameType::kSettings, 0, 0, payload);
}
inline std::string RstStream(uint32_t stream, uint32_t code = 8 /* CANCEL */) {
  std::string p = {static_cast<char>(code >> 24), static_cast<char>(code >> 16),
                   static_cast<char>(code >> 8), static_cast<char>(code)};
  return MakeFrame(FrameType::kRstStream, 0, stream, p);
}
// gRPC length-prefixed message (PROTOCOL-HTTP2.md): flag, 4-byte length, bytes.
inline std::string GrpcMessage(size_t n) {
  return std::string("\0\0\0\0", 4) + static_cast<char>(n) + std::string(n, 'm');
}

}  // namespace hoptrace::http2::test
