#include "agent/kernel/node_runtime_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "agent/kernel/bpf_loader.h"
#include "agent/kernel/link_teardown.h"
#include "runtime_node.h"
#include "runtime_node.skel.h"

namespace hoptrace {

std::unique_ptr<NodeRuntimeLoader> NodeRuntimeLoader::Start(const BpfLoader& capture) {
  std::unique_ptr<NodeRuntimeLoader> self(new NodeRuntimeLoader());
  self->skel_ = runtime_node_bpf__open();
  if (!self->skel_) {
    throw StartupError("cannot open the Node.js runtime object: " + std::string(strerror(errno)));
  }
  // The connections, head scans and ht_rt_current are the capture's.
  bpf_map* map;
  bpf_object__for_each_map(map, self->skel_->obj) {
    if (bpf_map__is_internal(map)) continue;
    const int fd = capture.MapFd(bpf_map__name(map));
    if (fd < 0) continue;
    if (int err = bpf_map__reuse_fd(map, fd); err != 0) {
      throw StartupError(std::string("Node.js runtime: cannot share map ") + bpf_map__name(map) +
                         ": " + strerror(-err));
    }
  }
  if (int err = runtime_node_bpf__load(self->skel_); err != 0) {
    throw StartupError("the Node.js runtime programs did not load (" +
                       std::string(strerror(-err)) + ")");
  }
  // After the capture's programs: at a write's exit the capture reads
  // ht_rt_current before ours deletes it.
  if (int err = runtime_node_bpf__attach(self->skel_); err != 0) {
    throw StartupError("the Node.js runtime programs did not attach (" +
                       std::string(strerror(-err)) + ")");
  }
  return self;
}

NodeRuntimeLoader::~NodeRuntimeLoader() {
  if (skel_) {
    DetachSkeletonLinks(skel_->skeleton);
    runtime_node_bpf__destroy(skel_);
  }
}

bool NodeRuntimeLoader::AddProcess(pid_t pid, int announce_fd) {
  const uint32_t key = static_cast<uint32_t>(pid);
  ht_node_proc value{};
  value.announce_fd = announce_fd;
  return bpf_map__update_elem(skel_->maps.ht_node_procs, &key, sizeof(key), &value,
                              sizeof(value), BPF_ANY) == 0;
}

void NodeRuntimeLoader::RemoveProcess(pid_t pid) {
  const uint32_t key = static_cast<uint32_t>(pid);
  bpf_map__delete_elem(skel_->maps.ht_node_procs, &key, sizeof(key), 0);
}

NodeRuntimeCounters NodeRuntimeLoader::ReadCounters() const {
  NodeRuntimeCounters out;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return out;
  std::vector<uint64_t> values(ncpu);
  auto sum = [&](uint32_t idx) -> uint64_t {
    if (bpf_map__lookup_elem(skel_->maps.ht_node_counters, &idx, sizeof(idx), values.data(),
                             values.size() * sizeof(uint64_t), 0) != 0) {
      return 0;
    }
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  out.announces = sum(HT_NODE_CNT_ANNOUNCE);
  out.bound = sum(HT_NODE_CNT_BOUND);
  out.bound_none = sum(HT_NODE_CNT_BOUND_NONE);
  out.out_unknown = sum(HT_NODE_CNT_OUT_UNKNOWN);
  out.unbound_writes = sum(HT_NODE_CNT_UNBOUND_WRITE);
  return out;
}

}  // namespace hoptrace
