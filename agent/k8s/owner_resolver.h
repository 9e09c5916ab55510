// From a pod's direct controller to the workload a person deployed: a
// ReplicaSet to its Deployment, a Job to its CronJob. One GET per owner the
// first time it is seen, then cached: the API load grows with the number of
// workloads on the node, never with traffic.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "agent/k8s/pod_info.h"

namespace hoptrace {

class OwnerResolver {
 public:
  // GET an API path; the object's JSON text, or nullopt when it cannot be
  // had (forbidden, gone, unreachable).
  using Fetch = std::function<std::optional<std::string>(const std::string& path)>;
  explicit OwnerResolver(Fetch fetch, size_t max_entries = 4096)
      : fetch_(std::move(fetch)), max_entries_(max_entries) {}

  // Sets pod->owner_kind/owner_name from pod->controller_kind/_name.
  void Resolve(PodInfo* pod);

  uint64_t lookups() const { return lookups_; }
  uint64_t failures() const { return failures_; }

 private:
  struct Owner {
    std::string kind, name;
  };
  Owner Lookup(const PodInfo& pod, const std::string& path);

  Fetch fetch_;
  size_t max_entries_;
  std::unordered_map<std::string, Owner> cache_;  // namespace/kind/name -> top owner
  uint64_t lookups_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace hoptrace
