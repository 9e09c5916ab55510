// An ExchangeSink that keeps what a protocol parser reports, for the parser
// unit tests.
#pragma once

#include <vector>

#include "agent/protocols/protocol.h"

namespace hoptrace::testing {

struct RecordingSink : ExchangeSink {
  void OnRequestStart(const RequestStart& request) override { starts.push_back(request); }
  void OnExchange(Exchange exchange) override { exchanges.push_back(std::move(exchange)); }
  std::vector<RequestStart> starts;
  std::vector<Exchange> exchanges;
};

}  // namespace hoptrace::testing
