// Goroutine context for Go processes (issue 11): attaches the Go runtime's
// probes (uprobes/go/go_runtime_sites.h finds them; the programs are in the
// capture object, bpf/runtime_go_probes.bpf.h) to one process at a time,
// bound to its pid, and tells the kernel which processes are Go
// (ht_go_procs). A process that is not Go, or whose binary does not fit the
// probes, keeps the thread model: counted, and said once at info level.
// Detach (exit, exec) removes its probes and every goroutine entry it had.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/kernel/preflight.h"

struct bpf_link;

namespace hoptrace {

class BpfLoader;

struct GoRuntimeStats {
  uint64_t attached = 0;  // Go processes followed by goroutine
  uint64_t fallback = 0;  // Go processes left to the thread model (why: logged)
  uint64_t detached = 0;
  // The kernel's counters (enum ht_go_counter).
  uint64_t bound = 0, inherited = 0, handoffs = 0, set = 0, unbound = 0;
};

class GoRuntime {
 public:
  explicit GoRuntime(const BpfLoader& capture) : capture_(capture) {}
  ~GoRuntime();
  GoRuntime(const GoRuntime&) = delete;
  GoRuntime& operator=(const GoRuntime&) = delete;

  // Follows the goroutines of pid if it is a Go program the probes fit.
  // true: attached (or already).
  bool Attach(pid_t pid);
  void Detach(pid_t pid);
  bool Follows(pid_t pid) const { return links_.count(pid) != 0; }
  // The kernel's SERVER span id (its 8 bytes, as on the wire) for the
  // request goroutine g of pid serves, as the kernel bound it.
  std::optional<uint64_t> RequestOf(pid_t pid, uint64_t g) const;
  GoRuntimeStats stats() const;
  size_t links() const;

 private:
  const BpfLoader& capture_;
  std::map<pid_t, std::vector<bpf_link*>> links_;
  GoRuntimeStats stats_;
};

// `hoptrace check --pid N`: which model serves the process's requests, as far
// as Go goes (goroutines, or the thread model and why).
PreflightItem GoRuntimeItem(int pid);

}  // namespace hoptrace
