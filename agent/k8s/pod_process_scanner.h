// Selection by pod: finds the processes of the containers a PodSelection
// selects. Two ways in: Consider(pid) when the kernel reports an exec (a
// container runtime starting a container's process, or anything exec'ing in
// one), and Scan(), a slow resync over /proc that also catches processes
// whose exec was missed and pods the API reported after their processes
// started. Each reads /proc/<pid>/cgroup once per process, and again only
// for processes whose pod the API has not reported yet. Processes that a
// selected one forks are followed by the kernel.
#pragma once

#include <sys/types.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "agent/k8s/pod_cache.h"
#include "agent/k8s/pod_selector.h"

namespace hoptrace {

class PodProcessScanner {
 public:
  // proc_root is "/proc" except in tests; self: the agent's own pid.
  PodProcessScanner(const PodCache* pods, PodSelection selection, pid_t self,
                    std::string proc_root = "/proc");

  // The processes selected since the last call.
  std::vector<pid_t> Scan();
  // One process that has just exec'd: true if it is selected now and was
  // not before (the caller selects it in the kernel).
  bool Consider(pid_t pid);
  // How many processes are selected now.
  size_t selected() const { return selected_count_; }
  // The cgroup v2 paths (relative to the hierarchy's root, as
  // /proc/<pid>/cgroup writes them) of the containers with a selected
  // process, as of the last Scan or Consider: propagation's scope.
  std::vector<std::string> SelectedCgroups() const;

 private:
  enum class State { kNotInPod, kPodUnknown, kSelected, kNotSelected };
  struct Seen {
    State state;
    std::string container_id, pod_uid, unified_path;
  };
  State Decide(const Seen& seen) const;
  // Reads and decides a process not seen before; false if it is gone.
  bool Read(pid_t pid, Seen* out) const;

  const PodCache* pods_;
  PodSelection selection_;
  pid_t self_;
  std::string proc_root_;
  std::unordered_map<pid_t, Seen> seen_;
  uint64_t generation_ = 0;
  size_t selected_count_ = 0;
};

}  // namespace hoptrace
