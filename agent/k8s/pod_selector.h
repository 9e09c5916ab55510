// Selection in Kubernetes terms (the config's `discovery` section): which
// pods' processes to trace, by namespace, pod labels, workload and container
// name. Values are shell globs ("shop-*").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/k8s/pod_info.h"

namespace hoptrace {

// Matches a container of a pod when every field given matches: one of the
// namespaces, all the labels, one of the workloads (the owner's name, after
// ReplicaSet -> Deployment), one of the containers. An empty selector
// matches every pod.
struct PodSelector {
  std::vector<std::string> namespaces;
  std::map<std::string, std::string> labels;
  std::vector<std::string> workloads;
  std::vector<std::string> containers;

  bool empty() const {
    return namespaces.empty() && labels.empty() && workloads.empty() && containers.empty();
  }
  // container: the container's name; empty when not known yet, then a
  // selector that names containers does not match.
  bool Matches(const PodInfo& pod, const std::string& container) const;
  bool operator==(const PodSelector&) const = default;
};

// Include, then exclude: a container is selected when an include selector
// matches it and no exclude selector does. No include selector: none.
struct PodSelection {
  std::vector<PodSelector> include;
  std::vector<PodSelector> exclude;

  bool enabled() const { return !include.empty(); }
  bool Selects(const PodInfo& pod, const std::string& container) const;
};

}  // namespace hoptrace
