#include "agent/kernel/net_probe_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/link_teardown.h"
#include "net_probe.h"
#include "net_probe.skel.h"

namespace hoptrace {

std::unique_ptr<NetProbeLoader> NetProbeLoader::Start(const NetProbeOptions& options,
                                                      const BpfLoader& capture) {
  std::unique_ptr<NetProbeLoader> self(new NetProbeLoader());
  self->skel_ = net_probe_bpf__open();
  if (!self->skel_) {
    throw StartupError("cannot open the network probe object: " + std::string(strerror(errno)));
  }
  self->skel_->rodata->targ_stats_interval_ns = options.stats_interval_ns;

  // Every map this object declares that the capture object also has is the
  // capture's own (same header, same definition): the owner table, the ring
  // buffer, ... Only the probe's own maps (hn_*) are created here.
  bpf_map* map;
  bpf_object__for_each_map(map, self->skel_->obj) {
    if (bpf_map__is_internal(map)) continue;  // .rodata/.bss are per object
    int fd = capture.MapFd(bpf_map__name(map));
    if (fd < 0) continue;
    if (int err = bpf_map__reuse_fd(map, fd); err != 0) {
      throw StartupError(std::string("network probes: cannot share map ") + bpf_map__name(map) +
                         ": " + strerror(-err));
    }
  }
  if (int err = net_probe_bpf__load(self->skel_); err != 0) {
    throw StartupError("network probes did not load (" + std::string(strerror(-err)) +
                       "): this kernel lacks tp_btf on the tcp tracepoints");
  }
  // Attached after the capture's programs: on the shared accept tracepoints
  // they run after the capture has registered the socket.
  if (int err = net_probe_bpf__attach(self->skel_); err != 0) {
    throw StartupError("network probes did not attach (" + std::string(strerror(-err)) + ")");
  }
  return self;
}

NetProbeLoader::~NetProbeLoader() {
  if (skel_) {
    DetachSkeletonLinks(skel_->skeleton);
    net_probe_bpf__destroy(skel_);
  }
}

NetProbeCounters NetProbeLoader::ReadCounters() const {
  NetProbeCounters out;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> values(ncpu);
  auto sum = [&](uint32_t idx) -> uint64_t {
    if (bpf_map__lookup_elem(skel_->maps.hn_counters, &idx, sizeof(idx), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0) {
      return 0;
    }
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  out.ringbuf_drops = sum(HT_NET_CNT_RINGBUF_DROPS);
  out.state_full = sum(HT_NET_CNT_STATE_FULL);
  out.segments = sum(HT_NET_CNT_SEGMENTS);
  out.events = sum(HT_NET_CNT_EVENTS);
  return out;
}

}  // namespace hoptrace
