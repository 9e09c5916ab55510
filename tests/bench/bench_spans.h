// Typical agent output for the OTLP benchmarks: HTTP SERVER and CLIENT spans with the semantic
// convention attributes the agent sets (15 each), from a few traced processes whose Resources
// carry the usual service/host/process/container attributes. Shared by ht_otlp_bench
// (translation cost) and ht_otlp_sink's load mode (export through the real exporters).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "agent/trace/span.h"

namespace hoptrace::bench {

inline std::vector<std::shared_ptr<const Resource>> TypicalResources(int processes) {
  std::vector<std::shared_ptr<const Resource>> resources;
  for (int p = 0; p < processes; ++p) {
    resources.push_back(std::make_shared<Resource>(Resource{{
        {"service.name", "service-" + std::to_string(p)},
        {"service.instance.id", "6f1c5b1e-8a3d-4f0e-9b7a-0c2d4e6f8a1" + std::to_string(p)},
        {"host.name", std::string("node-17.prod.example.internal")},
        {"process.pid", int64_t{10000 + p}},
        {"process.executable.name", std::string("python3")},
        {"process.command", std::string("python3 /srv/app/backend.py --port 8080")},
        {"container.id", std::string(64, 'c')},
    }}));
  }
  return resources;
}

// `n` spans, alternating SERVER and CLIENT, spread over 4 processes. Ids come from `seed`:
// real ids are random, and random bytes are what gzip cannot shrink.
inline std::vector<Span> TypicalBatch(size_t n, uint64_t seed = 42) {
  constexpr int kProcesses = 4;
  const auto resources = TypicalResources(kProcesses);
  std::vector<Span> spans(n);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) {
    Span& s = spans[i];
    for (auto& b : s.trace_id.bytes) b = static_cast<uint8_t>(rng());
    for (auto& b : s.span_id.bytes) b = static_cast<uint8_t>(rng());
    for (auto& b : s.parent_span_id.bytes) b = static_cast<uint8_t>(rng());
    s.flags = 1;
    s.kind = i % 2 ? SpanKind::kClient : SpanKind::kServer;
    s.name = "GET";
    s.start_unix_nano = 1700000000000000000ull + i * 1000003;
    s.end_unix_nano = s.start_unix_nano + 4200000 + i;
    s.attributes = {
        {"http.request.method", std::string("GET")},
        {"url.path", "/api/v1/orders/" + std::to_string(100000 + i)},
        {"url.query", std::string("user=REDACTED&page=REDACTED")},
        {"url.scheme", std::string("http")},
        {"http.response.status_code", int64_t{200}},
        {"server.address", std::string("orders.prod.svc.cluster.local")},
        {"server.port", int64_t{8080}},
        {"client.address", "10.42." + std::to_string(i % 250) + ".17"},
        {"client.port", int64_t(40000 + i)},
        {"network.peer.address", "10.42." + std::to_string(i % 250) + ".17"},
        {"network.peer.port", int64_t(40000 + i)},
        {"network.local.address", std::string("10.42.3.9")},
        {"network.local.port", int64_t{8080}},
        {"network.protocol.version", std::string("1.1")},
        {"user_agent.original", std::string("python-requests/2.31.0")},
    };
    s.resource = resources[i % kProcesses];
  }
  return spans;
}

}  // namespace hoptrace::bench
