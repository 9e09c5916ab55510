#include "agent/k8s/owner_resolver.h"

#include <nlohmann/json.hpp>

#include "agent/k8s/pod_json.h"

namespace hoptrace {

void OwnerResolver::Resolve(PodInfo* pod) {
  pod->owner_kind = pod->controller_kind;
  pod->owner_name = pod->controller_name;
  std::string path;
  if (pod->controller_kind == "ReplicaSet") {
    path = "/apis/apps/v1/namespaces/" + pod->namespace_name + "/replicasets/" +
           pod->controller_name;
  } else if (pod->controller_kind == "Job") {
    path = "/apis/batch/v1/namespaces/" + pod->namespace_name + "/jobs/" + pod->controller_name;
  } else {
    return;  // StatefulSet, DaemonSet, ... own their pods directly
  }
  const Owner owner = Lookup(*pod, path);
  pod->owner_kind = owner.kind;
  pod->owner_name = owner.name;
}

OwnerResolver::Owner OwnerResolver::Lookup(const PodInfo& pod, const std::string& path) {
  const std::string key =
      pod.namespace_name + "/" + pod.controller_kind + "/" + pod.controller_name;
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  ++lookups_;
  Owner owner{pod.controller_kind, pod.controller_name};
  bool known = false;
  if (auto body = fetch_(path)) {
    auto json = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
    if (!json.is_discarded()) {
      known = true;
      auto [kind, name] = ControllerOf(json);
      if ((pod.controller_kind == "ReplicaSet" && kind == "Deployment") ||
          (pod.controller_kind == "Job" && kind == "CronJob")) {
        owner = {kind, name};
      }
    }
  }
  if (!known) {
    ++failures_;
    // Without the ReplicaSet (RBAC without replicasets, API unreachable),
    // the Deployment controller's naming still tells: it names a
    // ReplicaSet "<deployment>-<pod-template-hash>" and labels its pods with
    // that hash. Not cached: the next pod asks again.
    if (pod.controller_kind == "ReplicaSet") {
      auto hash = pod.labels.find("pod-template-hash");
      const std::string& rs = pod.controller_name;
      if (hash != pod.labels.end() && rs.size() > hash->second.size() + 1 &&
          rs.ends_with("-" + hash->second)) {
        return {"Deployment", rs.substr(0, rs.size() - hash->second.size() - 1)};
      }
    }
    return owner;
  }
  // Owners are few; a node that has seen more than max_entries of them
  // starts over rather than grow.
  if (cache_.size() >= max_entries_) cache_.clear();
  cache_[key] = owner;
  return owner;
}

}  // namespace hoptrace
