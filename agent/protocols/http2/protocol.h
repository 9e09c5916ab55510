// HTTP/2 (cleartext h2c; TLS once its plaintext is captured) and gRPC on
// the protocol interface. Read-only: incoming traceparent is read from
// request headers, nothing is injected (see injection.md).
#pragma once

#include <string_view>

#include "agent/protocols/protocol.h"

namespace hoptrace::http2 {

extern const Protocol kProtocol;

// The first bytes of a connection start HTTP/2: the client preface (or a
// prefix of it, at least 4 bytes), or a server's first SETTINGS frame.
bool LooksLikeHttp2Start(std::string_view first_bytes);

}  // namespace hoptrace::http2
