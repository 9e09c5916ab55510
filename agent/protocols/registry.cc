// The protocols the agent parses. Adding one: its folder under
// agent/protocols/, its library in agent/CMakeLists.txt, one line here.
#include "agent/protocols/http1/protocol.h"
#include "agent/protocols/http2/h2c_upgrade.h"
#include "agent/protocols/http2/protocol.h"
#include "agent/protocols/postgres/postgres_parser.h"
#include "agent/protocols/protocol.h"
#include "agent/protocols/redis/redis_parser.h"

namespace hoptrace {
namespace {

// HTTP/1.1 followed into the protocols it may switch to: h2c (RFC 7540 3.2)
// goes on in HTTP/2's parser, the upgraded request being its stream 1.
constexpr http1::UpgradeTarget kHttp1Upgrades[] = {http2::kH2cUpgrade};

std::unique_ptr<ProtocolParser> NewHttp1Parser(Role role, ExchangeSink* sink,
                                               const ParserLimits& limits) {
  return http1::NewParser(role, sink, limits, kHttp1Upgrades);
}

const Protocol kHttp1{"http1", HT_PROTO_HTTP1, http1::LooksLikeHttp1Start, NewHttp1Parser};

// Recognition order: the first whose recogniser accepts a connection's first
// bytes wins (only when the kernel did not say).
const Protocol* const kProtocols[] = {
    &kHttp1,
    &http2::kProtocol,
    &postgres::kProtocol,
    &redis::kProtocol,
};

}  // namespace

std::span<const Protocol* const> Protocols() { return kProtocols; }

const Protocol* ProtocolForTag(ht_protocol tag) {
  for (const Protocol* p : kProtocols) {
    if (p->kernel_tag == tag) return p;
  }
  return nullptr;
}

const Protocol* RecogniseProtocol(std::string_view first_bytes) {
  for (const Protocol* p : kProtocols) {
    if (p->looks_like_start(first_bytes)) return p;
  }
  return nullptr;
}

}  // namespace hoptrace
