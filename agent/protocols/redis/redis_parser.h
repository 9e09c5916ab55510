// Turns the two byte streams of one Redis connection (RESP2 or RESP3) into
// exchanges: one per command, paired with replies in order (pipelines: N
// commands, then N replies). RESP3 push messages and attributes answer no
// command. After SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE / MONITOR the server
// streams messages that answer nothing: that command is the last exchange of
// the connection (counted in degraded).
//
// Bytes the kernel did not capture inside a bulk string are skipped by its
// length; elsewhere the stream's framing is lost and found again at the first
// later capture that starts like a RESP value (resp_reader.h). Commands whose
// replies may have been lost are finished when the client sends a command
// after the loss (as a synchronous client does once it has its reply).
#pragma once

#include <memory>

#include "agent/protocols/protocol.h"

namespace hoptrace::redis {

std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits);

// A RESP command array: "*<n>\r\n$" (inline commands are not recognised:
// "GET /" is HTTP's).
bool LooksLikeStart(std::string_view first_bytes);

extern const Protocol kProtocol;

}  // namespace hoptrace::redis
