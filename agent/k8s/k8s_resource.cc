#include "agent/k8s/k8s_resource.h"

namespace hoptrace {
namespace {

void AddIfAbsent(Attributes& attrs, AttrKey key, const std::string& value) {
  if (value.empty() || FindAttribute(attrs, key.view()) != nullptr) return;
  attrs.push_back(Attribute{key, value});
}

}  // namespace

void AddKubernetesAttributes(const PodMatch& match, Attributes& attrs) {
  const PodInfo& pod = *match.pod;
  AddIfAbsent(attrs, "k8s.namespace.name", pod.namespace_name);
  AddIfAbsent(attrs, "k8s.pod.name", pod.name);
  AddIfAbsent(attrs, "k8s.pod.uid", pod.uid);
  AddIfAbsent(attrs, "k8s.container.name", match.container_name);
  AddIfAbsent(attrs, "k8s.node.name", pod.node_name);
  const char* owner = OwnerNameAttribute(pod.owner_kind);
  if (*owner != '\0') {
    if (auto key = AttrKey::Intern(owner)) AddIfAbsent(attrs, *key, pod.owner_name);
  }
  // A Deployment's pods also name the ReplicaSet between them, a CronJob's
  // the Job.
  if (pod.controller_kind != pod.owner_kind) {
    const char* direct = OwnerNameAttribute(pod.controller_kind);
    if (*direct != '\0') {
      if (auto key = AttrKey::Intern(direct)) AddIfAbsent(attrs, *key, pod.controller_name);
    }
  }
  for (const auto& [k, v] : pod.resource_annotations) {
    if (auto key = AttrKey::Intern(k)) AddIfAbsent(attrs, *key, v);
  }
}

std::string KubernetesServiceName(const PodMatch& match) {
  const PodInfo& pod = *match.pod;
  if (!pod.service_name_annotation.empty()) return pod.service_name_annotation;
  if (auto it = pod.labels.find("app.kubernetes.io/name");
      it != pod.labels.end() && !it->second.empty()) {
    return it->second;
  }
  if (!pod.owner_name.empty()) return pod.owner_name;
  if (!match.container_name.empty()) return match.container_name;
  return pod.name;
}

}  // namespace hoptrace
