#include "agent/protocols/http2/protocol.h"

#include "agent/protocols/http2/frame.h"
#include "agent/protocols/http2/parser.h"

namespace hoptrace::http2 {

bool LooksLikeHttp2Start(std::string_view b) {
  const std::string_view head = b.substr(0, kClientPreface.size());
  if (head.size() >= 4 && kClientPreface.substr(0, head.size()) == head) return true;
  if (!PlausibleFrameChain(b)) return false;
  const FrameHeader h = ParseFrameHeader(b);
  return h.Is(FrameType::kSettings) && (h.flags & kFlagAck) == 0;
}

const Protocol kProtocol{"http2", HT_PROTO_HTTP2, LooksLikeHttp2Start, NewParser};

}  // namespace hoptrace::http2
