// HTTP/2 after an HTTP/1.1 upgrade to h2c (RFC 7540 3.2): the HTTP/1 parser
// hands the connection over at the end of "101 Switching Protocols".
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "agent/protocols/http1/protocol.h"
#include "agent/protocols/protocol.h"

namespace hoptrace::http2 {

// The HTTP/2 parser of the rest of the connection, with `upgraded` (the
// request that asked) as stream 1 (exchange 1, not announced again).
std::unique_ptr<ProtocolParser> AdoptH2cUpgrade(const http1::Record& upgraded, Role role,
                                                ExchangeSink* sink, const ParserLimits& limits);

// RFC 7540 3.2.1: "The content of the HTTP2-Settings header field is the
// payload of a SETTINGS frame, encoded as a base64url string [...] with any
// trailing '=' characters omitted". Its SETTINGS_HEADER_TABLE_SIZE, if it
// has one (the last one wins, as in a frame); nullopt also if invalid.
std::optional<uint32_t> HeaderTableSizeOf(std::string_view http2_settings);

// h2c for the registry's HTTP/1.
inline constexpr http1::UpgradeTarget kH2cUpgrade{"h2c", AdoptH2cUpgrade};

}  // namespace hoptrace::http2
