#include "agent/k8s/pod_json.h"

#include <nlohmann/json.hpp>

namespace hoptrace {
namespace {

constexpr std::string_view kResourceAnnotationPrefix = "resource.opentelemetry.io/";

std::string StringAt(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::map<std::string, std::string> StringMapAt(const nlohmann::json& obj, const char* key) {
  std::map<std::string, std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_object()) return out;
  for (const auto& [k, v] : it->items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

}  // namespace

const char* OwnerNameAttribute(const std::string& kind) {
  if (kind == "Deployment") return "k8s.deployment.name";
  if (kind == "ReplicaSet") return "k8s.replicaset.name";
  if (kind == "StatefulSet") return "k8s.statefulset.name";
  if (kind == "DaemonSet") return "k8s.daemonset.name";
  if (kind == "Job") return "k8s.job.name";
  if (kind == "CronJob") return "k8s.cronjob.name";
  return "";
}

std::string ContainerIdFromStatus(const std::string& container_id) {
  const size_t sep = container_id.find("://");
  return sep == std::string::npos ? container_id : container_id.substr(sep + 3);
}

std::pair<std::string, std::string> ControllerOf(const nlohmann::json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return {};
  auto refs = meta->find("ownerReferences");
  if (refs == meta->end() || !refs->is_array()) return {};
  for (const auto& ref : *refs) {
    auto controller = ref.find("controller");
    if (controller != ref.end() && controller->is_boolean() && controller->get<bool>()) {
      return {StringAt(ref, "kind"), StringAt(ref, "name")};
    }
  }
  return {};
}

std::optional<PodInfo> PodFromJson(const nlohmann::json& pod) {
  if (!pod.is_object()) return std::nullopt;
  auto meta = pod.find("metadata");
  if (meta == pod.end() || !meta->is_object()) return std::nullopt;
  PodInfo p;
  p.uid = StringAt(*meta, "uid");
  if (p.uid.empty()) return std::nullopt;
  p.name = StringAt(*meta, "name");
  p.namespace_name = StringAt(*meta, "namespace");
  p.resource_version = StringAt(*meta, "resourceVersion");
  p.labels = StringMapAt(*meta, "labels");
  for (auto& [k, v] : StringMapAt(*meta, "annotations")) {
    if (!k.starts_with(kResourceAnnotationPrefix)) continue;
    std::string key = k.substr(kResourceAnnotationPrefix.size());
    if (key == "service.name") {
      p.service_name_annotation = v;
    } else if (!key.empty()) {
      p.resource_annotations[key] = v;
    }
  }
  std::tie(p.controller_kind, p.controller_name) = ControllerOf(pod);
  p.owner_kind = p.controller_kind;
  p.owner_name = p.controller_name;
  if (auto spec = pod.find("spec"); spec != pod.end() && spec->is_object()) {
    p.node_name = StringAt(*spec, "nodeName");
  }
  if (auto status = pod.find("status"); status != pod.end() && status->is_object()) {
    for (const char* list : {"initContainerStatuses", "containerStatuses",
                             "ephemeralContainerStatuses"}) {
      auto it = status->find(list);
      if (it == status->end() || !it->is_array()) continue;
      for (const auto& c : *it) {
        const std::string id = ContainerIdFromStatus(StringAt(c, "containerID"));
        if (!id.empty()) p.containers[id] = StringAt(c, "name");
      }
    }
  }
  return p;
}

}  // namespace hoptrace
