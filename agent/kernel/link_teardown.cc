#include "agent/kernel/link_teardown.h"

#include <bpf/libbpf.h>

namespace hoptrace {

void DestroyLinks(const std::vector<bpf_link*>& links) {
  // One after another. Closing them from up to 32 threads at once overlapped
  // the kernel's grace-period waits (an agent with TLS probes stopped in
  // ~0.9 s instead of ~2.4 s), but a Debian 11 guest (5.10, TCG) once
  // locked up with two of the agent's threads spinning in the kernel for 30
  // minutes ("soft lockup", 1 run in 6, while such an agent stopped). Until
  // that is understood, a slower stop is the price of never hanging a node.
  for (bpf_link* l : links) {
    if (l != nullptr) bpf_link__destroy(l);
  }
}

void DetachSkeletonLinks(bpf_object_skeleton* skeleton) {
  if (skeleton == nullptr) return;
  std::vector<bpf_link*> links;
  const auto* base = reinterpret_cast<const char*>(skeleton->progs);
  for (int i = 0; i < skeleton->prog_cnt; ++i) {
    // Entries are prog_skel_sz apart (bpftool may write a newer, larger one).
    const auto* p = reinterpret_cast<const bpf_prog_skeleton*>(
        base + static_cast<size_t>(i) * skeleton->prog_skel_sz);
    if (p->link != nullptr && *p->link != nullptr) {
      links.push_back(*p->link);
      *p->link = nullptr;
    }
  }
  DestroyLinks(links);
}

}  // namespace hoptrace
