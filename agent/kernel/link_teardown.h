// Detaching BPF links: one place for every loader and per-process detach.
//
// Closing the link of a perf-event tracepoint or of a uprobe waits in the
// kernel for RCU grace periods (~85 ms each on this project's machines:
// tracepoint_synchronize_unregister, uprobe_unregister_sync): one after
// another, an agent with 27 tracepoint links took 2.3 s to stop. Closing
// them from several threads at once overlapped the waits, and was undone
// after a kernel soft lockup in a 5.10 guest (link_teardown.cc). Raw
// tracepoint (tp_btf) and cgroup links close at once either way, which is
// why the process-wide tracepoints are BTF ones.
#pragma once

#include <vector>

struct bpf_link;
struct bpf_object_skeleton;

namespace hoptrace {

// Destroys every link (nullptr entries are skipped); returns when all are
// gone.
void DestroyLinks(const std::vector<bpf_link*>& links);

// The skeleton's attached links, destroyed as DestroyLinks does; its link
// pointers are left null, so destroying the skeleton afterwards only closes
// programs and maps.
void DetachSkeletonLinks(bpf_object_skeleton* skeleton);

}  // namespace hoptrace
