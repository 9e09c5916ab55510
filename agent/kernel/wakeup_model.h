// The wake-up model (bpf/runtime_wakeup.bpf.h) as `hoptrace check --pid N`
// reports it: the runtime model of last resort, for native thread pools.
#ifndef HOPTRACE_AGENT_KERNEL_WAKEUP_MODEL_H
#define HOPTRACE_AGENT_KERNEL_WAKEUP_MODEL_H

#include "agent/kernel/preflight.h"

namespace hoptrace {

// One line: whether the wake-up model can serve process pid and under which
// conditions (it has no per-process state to find: no symbols, no offsets).
PreflightItem WakeupModelItem(int pid);

}  // namespace hoptrace

#endif  // HOPTRACE_AGENT_KERNEL_WAKEUP_MODEL_H
