#include "agent/protocols/http2/frame.h"

namespace hoptrace::http2 {
namespace {

uint32_t Be32(std::string_view b) {
  return uint32_t{static_cast<uint8_t>(b[0])} << 24 | uint32_t{static_cast<uint8_t>(b[1])} << 16 |
         uint32_t{static_cast<uint8_t>(b[2])} << 8 | uint32_t{static_cast<uint8_t>(b[3])};
}

// RFC 9113 4.2: SETTINGS_MAX_FRAME_SIZE is at most 2^24-1; peers rarely go
// past 2^20 and a larger length at a guessed boundary is more likely noise.
constexpr uint32_t kPlausibleMaxLength = 1u << 20;

}  // namespace

FrameHeader ParseFrameHeader(std::string_view b) {
  FrameHeader h;
  h.length = uint32_t{static_cast<uint8_t>(b[0])} << 16 | uint32_t{static_cast<uint8_t>(b[1])} << 8 |
             uint32_t{static_cast<uint8_t>(b[2])};
  h.type = static_cast<uint8_t>(b[3]);
  h.flags = static_cast<uint8_t>(b[4]);
  h.stream_id = Be32(b.substr(5, 4)) & 0x7fffffffu;
  return h;
}

bool PlausibleFrameHeader(const FrameHeader& h) {
  if (h.length > kPlausibleMaxLength) return false;
  const bool on_stream = h.stream_id != 0;
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kData:
      return on_stream && (h.flags & ~(kFlagEndStream | kFlagPadded)) == 0;
    case FrameType::kHeaders:
      return on_stream &&
             (h.flags & ~(kFlagEndStream | kFlagEndHeaders | kFlagPadded | kFlagPriority)) == 0;
    case FrameType::kPriority:
      return on_stream && h.length == 5 && h.flags == 0;
    case FrameType::kRstStream:
      return on_stream && h.length == 4 && h.flags == 0;
    case FrameType::kSettings:
      return !on_stream && h.length % 6 == 0 && (h.flags & ~kFlagAck) == 0 &&
             ((h.flags & kFlagAck) == 0 || h.length == 0);
    case FrameType::kPushPromise:
      return on_stream && (h.flags & ~(kFlagEndHeaders | kFlagPadded)) == 0;
    case FrameType::kPing:
      return !on_stream && h.length == 8 && (h.flags & ~kFlagAck) == 0;
    case FrameType::kGoaway:
      return !on_stream && h.length >= 8 && h.flags == 0;
    case FrameType::kWindowUpdate:
      return h.length == 4 && h.flags == 0;
    case FrameType::kContinuation:
      return on_stream && (h.flags & ~kFlagEndHeaders) == 0;
  }
  return false;  // extension frame types are legal but no evidence of a boundary
}

bool PlausibleFrameChain(std::string_view data) {
  if (data.size() < kFrameHeaderSize) return false;
  while (data.size() >= kFrameHeaderSize) {
    const FrameHeader h = ParseFrameHeader(data);
    if (!PlausibleFrameHeader(h)) return false;
    if (data.size() - kFrameHeaderSize <= h.length) break;
    data.remove_prefix(kFrameHeaderSize + h.length);
  }
  return true;
}

std::optional<BlockFragment> HeaderBlockFragment(const FrameHeader& h, std::string_view payload,
                                                 bool complete) {
  BlockFragment out;
  size_t pad = 0;
  if (h.flags & kFlagPadded) {
    if (payload.empty()) return std::nullopt;
    pad = static_cast<uint8_t>(payload[0]);
    payload.remove_prefix(1);
  }
  if (h.Is(FrameType::kHeaders) && (h.flags & kFlagPriority)) {
    if (payload.size() < 5) return std::nullopt;
    payload.remove_prefix(5);  // exclusive bit, stream dependency, weight
  } else if (h.Is(FrameType::kPushPromise)) {
    if (payload.size() < 4) return std::nullopt;
    out.promised_stream_id = Be32(payload) & 0x7fffffffu;
    payload.remove_prefix(4);
  }
  // 6.1: "If the length of the padding is the length of the frame payload or
  // greater, the recipient MUST treat this as a connection error".
  if (!complete) pad = 0;
  if (pad > payload.size()) return std::nullopt;
  out.fragment = payload.substr(0, payload.size() - pad);
  return out;
}

}  // namespace hoptrace::http2
