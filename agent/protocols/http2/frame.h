// HTTP/2 framing (RFC 9113 sections 3.4, 4 and 6): the connection preface,
// the 9-byte frame header and the parts of frame payloads the agent reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace hoptrace::http2 {

// RFC 9113 3.4: "the connection preface starts with the string
// PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", sent by the client, followed by SETTINGS.
inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

inline constexpr size_t kFrameHeaderSize = 9;

enum class FrameType : uint8_t {
  kData = 0x0,
  kHeaders = 0x1,
  kPriority = 0x2,
  kRstStream = 0x3,
  kSettings = 0x4,
  kPushPromise = 0x5,
  kPing = 0x6,
  kGoaway = 0x7,
  kWindowUpdate = 0x8,
  kContinuation = 0x9,
};

// Flags (RFC 9113 6.x). END_STREAM and ACK share a bit on different types.
inline constexpr uint8_t kFlagEndStream = 0x1;
inline constexpr uint8_t kFlagAck = 0x1;
inline constexpr uint8_t kFlagEndHeaders = 0x4;
inline constexpr uint8_t kFlagPadded = 0x8;
inline constexpr uint8_t kFlagPriority = 0x20;

// SETTINGS parameters the agent uses (RFC 9113 6.5.2).
inline constexpr uint16_t kSettingsHeaderTableSize = 0x1;

struct FrameHeader {
  uint32_t length = 0;  // payload bytes, 24 bits
  uint8_t type = 0;     // a FrameType, or an unknown type (ignored, 5.5)
  uint8_t flags = 0;
  uint32_t stream_id = 0;  // 31 bits, reserved bit cleared

  bool Is(FrameType t) const { return type == static_cast<uint8_t>(t); }
};

// Decodes the 9 bytes at the front of b (b.size() >= kFrameHeaderSize).
FrameHeader ParseFrameHeader(std::string_view b);

// True if these bytes could be a frame header a peer sends: a known type
// with a length, flags and stream id that type allows. Used to find frame
// boundaries after bytes were lost, or on a connection joined midway, where
// a wrong guess costs a resync later.
bool PlausibleFrameHeader(const FrameHeader& h);

// True if data starts with a plausible frame header and every further frame
// header that lies wholly in data (following the lengths) is plausible too;
// at least one header must be complete.
bool PlausibleFrameChain(std::string_view data);

// The header block fragment of a HEADERS or PUSH_PROMISE payload, without
// padding (6.1: Pad Length + padding when PADDED), the priority fields of
// HEADERS (6.2: 5 bytes when PRIORITY) or the promised stream id of
// PUSH_PROMISE (6.6: 4 bytes). nullopt if the payload is too short for what
// its flags announce (a PROTOCOL_ERROR for the peer, skipped here). For a
// payload known only by its captured prefix (complete=false) the padding,
// which lies at the end, is not in it and nothing is cut from the end.
struct BlockFragment {
  std::string_view fragment;
  uint32_t promised_stream_id = 0;  // PUSH_PROMISE only
};
std::optional<BlockFragment> HeaderBlockFragment(const FrameHeader& h, std::string_view payload,
                                                 bool complete = true);

}  // namespace hoptrace::http2
