// Selection by pod: finds the processes of the containers a PodSelection
// selects. Runs on the event thread once a second (and when the node's pods
// change): reads /proc/<pid>/cgroup once per process, and again only for
// processes whose pod the API has not reported yet. Processes that a
// selected one forks are followed by the kernel; this finds the ones a
// container runtime starts.
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
  // How many processes are selected now.
  size_t selected() const { return selected_count_; }

 private:
  enum class State { kNotInPod, kPodUnknown, kSelected, kNotSelected };
  struct Seen {
    State state;
    std::string container_id, pod_uid;
  };
  State Decide(const Seen& seen) const;

  const PodCache* pods_;
  PodSelection selection_;
  pid_t self_;
  std::string proc_root_;
  std::unordered_map<pid_t, Seen> seen_;
  uint64_t generation_ = 0;
  size_t selected_count_ = 0;
};

}  // namespace hoptrace
