#include "agent/k8s/pod_selector.h"

#include <fnmatch.h>

#include <algorithm>

namespace hoptrace {
namespace {

bool Glob(const std::string& pattern, const std::string& value) {
  return fnmatch(pattern.c_str(), value.c_str(), 0) == 0;
}

bool AnyGlob(const std::vector<std::string>& patterns, const std::string& value) {
  return patterns.empty() ||
         std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return Glob(p, value); });
}

}  // namespace

bool PodSelector::Matches(const PodInfo& pod, const std::string& container) const {
  if (!AnyGlob(namespaces, pod.namespace_name)) return false;
  for (const auto& [key, pattern] : labels) {
    auto it = pod.labels.find(key);
    if (it == pod.labels.end() || !Glob(pattern, it->second)) return false;
  }
  // A pod without an owner is its own workload.
  if (!AnyGlob(workloads, pod.owner_name.empty() ? pod.name : pod.owner_name)) return false;
  if (!containers.empty() && (container.empty() || !AnyGlob(containers, container))) return false;
  return true;
}

bool PodSelection::Selects(const PodInfo& pod, const std::string& container) const {
  auto matches = [&](const PodSelector& s) { return s.Matches(pod, container); };
  return std::any_of(include.begin(), include.end(), matches) &&
         std::none_of(exclude.begin(), exclude.end(), matches);
}

}  // namespace hoptrace
