#include "agent/connections/connection.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace hoptrace {
namespace {

std::string FormatAddr(uint16_t family, const std::array<uint8_t, 16>& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, addr.data(), buf, sizeof(buf));
  } else if (family == AF_INET6) {
    // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d; report
    // the IPv4 address, as the peer itself would.
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(addr.data(), kMapped, sizeof(kMapped)) == 0) {
      inet_ntop(AF_INET, addr.data() + 12, buf, sizeof(buf));
    } else {
      inet_ntop(AF_INET6, addr.data(), buf, sizeof(buf));
    }
  }
  return buf;
}

}  // namespace

const std::string& ConnInfo::LocalAddress() const {
  if (!local_text_) local_text_ = tuple_known ? FormatAddr(family, local_addr) : "";
  return *local_text_;
}
const std::string& ConnInfo::RemoteAddress() const {
  if (!remote_text_) remote_text_ = tuple_known ? FormatAddr(family, remote_addr) : "";
  return *remote_text_;
}

std::string_view CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kClosed: return "closed";
    case CloseReason::kProcessExit: return "process_exit";
    case CloseReason::kIdle: return "idle";
    case CloseReason::kEvicted: return "evicted";
    case CloseReason::kShutdown: return "shutdown";
  }
  return "closed";
}

}  // namespace hoptrace
