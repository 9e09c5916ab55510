// Loads bpf/net_probe.bpf.c next to the capture object: TCP facts (RTT,
// retransmissions, resets, arriving TTL) of the connections the capture
// follows. It shares the capture's maps (which sockets are ours, the ring
// buffer), so its events arrive through BpfLoader::Poll with the rest.
//
// Optional by design: a kernel without these tracepoints still traces HTTP.
// Destroying the loader detaches its programs; nothing is pinned.
#pragma once

#include <cstdint>
#include <memory>

struct net_probe_bpf;

namespace hoptrace {

class BpfLoader;

struct NetProbeOptions {
  // At most one RTT sample per connection per interval (TTL changes and
  // first sightings are always reported).
  uint64_t stats_interval_ns = 200'000'000;
};

struct NetProbeCounters {
  uint64_t ringbuf_drops = 0;  // events lost: ring buffer full
  uint64_t state_full = 0;     // connections the probe could not remember
  uint64_t segments = 0;       // arriving segments of followed connections
  uint64_t events = 0;         // events sent
};

class NetProbeLoader {
 public:
  // Open, share capture's maps, load, attach. Throws StartupError saying why.
  static std::unique_ptr<NetProbeLoader> Start(const NetProbeOptions& options,
                                               const BpfLoader& capture);
  ~NetProbeLoader();
  NetProbeLoader(const NetProbeLoader&) = delete;
  NetProbeLoader& operator=(const NetProbeLoader&) = delete;

  NetProbeCounters ReadCounters() const;

 private:
  NetProbeLoader() = default;
  net_probe_bpf* skel_ = nullptr;
};

}  // namespace hoptrace
