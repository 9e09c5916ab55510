// Detaching BPF links without waiting for each in turn.
//
// Closing the link of a perf-event tracepoint or of a uprobe waits in the
// kernel for RCU grace periods (~85 ms each on this project's machines:
// tracepoint_synchronize_unregister, uprobe_unregister_sync). One after
// another, an agent with 27 tracepoint links took 2.3 s to stop, and a
// process with a few dozen probes held the run loop for seconds when it
// exited. Closed from several threads at once, the waits overlap: about one
// grace period in all. Raw tracepoint and cgroup links close at once either
// way.
#pragma once

#include <vector>

struct bpf_link;
struct bpf_object_skeleton;

namespace hoptrace {

// Destroys every link (nullptr entries are skipped), several at a time;
// returns when all are gone.
void DestroyLinks(const std::vector<bpf_link*>& links);

// The skeleton's attached links, destroyed as DestroyLinks does; its link
// pointers are left null, so destroying the skeleton afterwards only closes
// programs and maps.
void DetachSkeletonLinks(bpf_object_skeleton* skeleton);

}  // namespace hoptrace
