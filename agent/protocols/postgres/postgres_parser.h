// Turns the two byte streams of one PostgreSQL connection (protocol 3.0) into
// exchanges, one per query:
//   - simple query: one Query message and everything the backend sends up to
//     its ReadyForQuery (a Query holding several statements is one exchange);
//   - extended query: one Execute. Its request starts at the first Parse /
//     Bind / Describe after the previous Execute or Sync; its response ends
//     at the Execute's CommandComplete / EmptyQueryResponse / PortalSuspended
//     / ErrorResponse. Exchanges are reported at the ReadyForQuery that ends
//     their Sync cycle (an error makes the backend skip to the Sync: the
//     Executes it skipped carry the same SQLSTATE). Parse / Describe / Sync
//     cycles without an Execute (a driver preparing) are no exchange.
// Prepared statements: Parse remembers name -> sanitized text, Bind portal ->
// statement, Close forgets; bounded (kMaxStatements, oldest out). Bind
// parameter values are never kept.
//
// Startup: StartupMessage (database -> db.namespace), SSLRequest /
// GSSENCRequest answered 'N' (then a StartupMessage follows) or 'S' / 'G'
// (encrypted: the parser stops; counted in degraded). CancelRequest
// connections carry no queries.
//
// Bytes the kernel did not capture (total_bytes > captured) inside a message
// body are skipped by its length; a gap that crosses a message boundary
// loses the framing: the stream resyncs at the first offset of a later
// capture where a run of plausible headers starts (messages.h). Cycles whose
// answer may have been lost are finished when the client starts a new cycle
// (a synchronous client only does so once it has read the whole answer).
#pragma once

#include <memory>

#include "agent/protocols/protocol.h"

namespace hoptrace::postgres {

inline constexpr size_t kMaxStatements = 256;  // prepared statements and portals, each

std::unique_ptr<ProtocolParser> NewParser(Role role, ExchangeSink* sink,
                                          const ParserLimits& limits);

// A StartupMessage (v3), SSLRequest or GSSENCRequest: the first bytes a
// PostgreSQL client sends.
bool LooksLikeStart(std::string_view first_bytes);

extern const Protocol kProtocol;

}  // namespace hoptrace::postgres
