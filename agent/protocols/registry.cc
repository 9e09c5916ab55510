// The protocols the agent parses. Adding one: its folder under
// agent/protocols/, its library in agent/CMakeLists.txt, one line here.
#include "agent/protocols/http1/protocol.h"
#include "agent/protocols/protocol.h"

namespace hoptrace {
namespace {

// Recognition order: the first whose recogniser accepts a connection's first
// bytes wins (only when the kernel did not say).
const Protocol* const kProtocols[] = {
    &http1::kProtocol,
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

ParserStats& ParserStats::operator+=(const ParserStats& o) {
  records += o.records;
  orphan_responses += o.orphan_responses;
  invalid_bytes += o.invalid_bytes;
  resyncs += o.resyncs;
  pending_overflow += o.pending_overflow;
  degraded += o.degraded;
  return *this;
}

}  // namespace hoptrace
