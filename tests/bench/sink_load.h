// ht_otlp_sink's load mode: drives an OTLP receiver through the project's own exporters
// (OtlpGrpcExporter / OtlpHttpExporter), `in_flight` lanes, each a thread with its own
// exporter instance exporting pre-built batches back to back, and reports spans/s accepted.
#pragma once

#include <cstddef>
#include <string>

#include "exporters/otlp/otlp_options.h"

namespace hoptrace::bench {

struct LoadOptions {
  OtlpProtocol protocol = OtlpProtocol::kGrpc;
  // Empty: the sink's defaults on 127.0.0.1 (4317, or 4318/v1/traces).
  std::string endpoint;
  int in_flight = 1;
  size_t batch = 512;
  double seconds = 10;
  // Exports finished in the first `warmup` seconds are not counted (connection set-up, the
  // first allocations of each side).
  double warmup = 1;
  bool gzip = false;
  // Distinct batches per lane (different ids), sent in turn.
  int distinct_batches = 8;
};

// Runs the load, prints one JSON line of results on stdout and a readable line on stderr.
// Returns 0 when every counted export succeeded, 1 otherwise.
int RunLoad(const LoadOptions& options);

}  // namespace hoptrace::bench
