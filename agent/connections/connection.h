// What identifies one traced connection and what is known about it. Shared
// by the connection tracker, the protocol parsers' users and the trace stage.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "socket_trace.h"

namespace hoptrace {

struct ConnId {
  uint32_t pid = 0;
  int32_t fd = -1;
  uint64_t gen = 0;
  bool operator==(const ConnId&) const = default;
};

struct ConnIdHash {
  size_t operator()(const ConnId& c) const {
    return std::hash<uint64_t>()((uint64_t{c.pid} << 32 | uint32_t(c.fd)) ^ (c.gen * 0x9e3779b97f4a7c15ull));
  }
};

struct ConnInfo {
  ConnId id;
  bool tuple_known = false;
  uint16_t family = 0;  // AF_INET / AF_INET6
  std::array<uint8_t, 16> local_addr{};
  std::array<uint8_t, 16> remote_addr{};
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  ht_role kernel_role = HT_ROLE_UNKNOWN;
  // The protocol the kernel recognised at the connection's first bytes
  // (HT_PROTO_*), or the one the agent's registry recognised when the open
  // event was lost.
  ht_protocol protocol = HT_PROTO_UNKNOWN;
  // Bytes the process wrote and read on it so far, as the events say; whole
  // only when the connection was followed from its open event on.
  bool followed_from_open = false;
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;

  // "10.0.0.1", "::1"; "" if unknown. Formatted once per connection: every
  // span of it carries them (inet_ntop per span was a visible cost).
  const std::string& LocalAddress() const;
  const std::string& RemoteAddress() const;

 private:
  mutable std::optional<std::string> local_text_;
  mutable std::optional<std::string> remote_text_;
};

enum class CloseReason { kClosed, kProcessExit, kIdle, kEvicted, kShutdown };
std::string_view CloseReasonName(CloseReason reason);

// Why and when a connection ended, for exchanges produced by its end.
struct Closing {
  CloseReason reason = CloseReason::kClosed;
  uint64_t ts_ns = 0;  // CLOCK_MONOTONIC
};

}  // namespace hoptrace
